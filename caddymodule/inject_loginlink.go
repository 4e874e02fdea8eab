package caddymodule

import "net/http"

// loginLinkHTML is the "Log in with KaseyaOne" link added to BMS's login
// page. It is a function of the request so that it can be rendered
// differently per tenant (the integration switch renders it disabled;
// integration.go).
func (h *Handler) loginLinkHTML(r *http.Request) string {
	if !h.loginLinkEnabled(r) {
		return disabledLoginLinkHTML
	}
	return `<a id="k1sso-login-link" href="/.k1sso/login">Log in with KaseyaOne</a>`
}

// disabledLoginLinkHTML is the login link while KaseyaOne sign-in is off:
// not a link at all, so it cannot be followed.
const disabledLoginLinkHTML = `<span id="k1sso-login-link" class="disabled" aria-disabled="true" title="KaseyaOne sign-in is turned off for this tenant">Log in with KaseyaOne</span>`
