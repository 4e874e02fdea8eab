package caddymodule

import (
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/inject"
)

// What is injected into a page.
type injectKind int

const (
	injectLoginLink injectKind = iota + 1 // before </body> of login_path
	injectLauncher                        // after #user-name, else fixed top right
)

// nextInjected runs the rest of the route through the injecting writer (when
// injection applies) and finishes the rewritten body afterwards.
func (h *Handler) nextInjected(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *sessionEntry) error {
	iw, kind := h.wrapInject(w, r, e)
	if iw == nil {
		return next.ServeHTTP(w, r)
	}
	defer iw.Abort()
	err := next.ServeHTTP(iw, r)
	if cerr := iw.Close(); cerr != nil {
		if ce := h.logger.Check(zapcore.DebugLevel, "finishing an injected page"); ce != nil {
			ce.Write(zap.String("path", r.URL.Path), zap.Error(cerr))
		}
	}
	if iw.Injected() {
		h.metrics.injectedPage(injectKindLabel(kind))
	}
	return err
}

// wrapInject returns the writer that adds the login link, launcher icon
// or expiry notice to BMS pages, and what it adds. e is nil without a
// session. Where nothing can be injected it returns nil, so such requests
// pay nothing.
func (h *Handler) wrapInject(w http.ResponseWriter, r *http.Request, e *sessionEntry) (*inject.Writer, injectKind) {
	if !inject.PageRequest(r) {
		return nil, 0
	}
	var kind injectKind
	notice := h.noticeDue(e, h.shared.now()) // notice.go
	switch {
	case h.injectLink && r.URL.Path == h.cfg.loginPath:
		kind = injectLoginLink
		notice = false
	case h.injectLaunch && e != nil:
		kind = injectLauncher
	case notice:
		kind = injectNotice
	default:
		return nil, 0
	}
	var noticeMarkup string
	if notice {
		noticeMarkup = noticeHTML(r.URL.RequestURI(), e.s.Expires())
	}
	return inject.New(w, r, func() inject.Page { return h.injectedPage(r, kind, noticeMarkup) }), kind
}

// injectedPage is what a page of kind gets; notice is the expiry notice
// to add ("" none; notice.go).
func (h *Handler) injectedPage(r *http.Request, kind injectKind, notice string) inject.Page {
	css := injectCSS
	if notice != "" {
		css = noticeCSS + css
	}
	switch kind {
	case injectLoginLink:
		return inject.Page{CSS: css, BeforeBodyEnd: h.loginLinkHTML(r)}
	case injectNotice:
		return inject.Page{CSS: css, BeforeBodyEnd: notice}
	}
	// The notice comes with the launcher, wherever it goes.
	return inject.Page{CSS: css, AfterID: "user-name", After: notice + launcherHTML, BeforeBodyEnd: notice + launcherFixedHTML}
}

// injectCSS styles the injected elements. It lives in one <style> element
// (with a nonce under a CSP) because style attributes cannot be allowed by
// a nonce.
const injectCSS = `#k1sso-login-link{display:block;width:max-content;margin:16px auto;padding:10px 18px;` +
	`border-radius:6px;background:#0b5cab;color:#fff;font:600 14px/1.2 system-ui,sans-serif;text-decoration:none}` +
	`#k1sso-login-link:hover{background:#094a8a}` +
	`#k1sso-login-link[aria-disabled=true]{background:#9aa5b1;cursor:not-allowed;pointer-events:none}` +
	`#k1sso-launcher{display:inline-flex;align-items:center;justify-content:center;width:26px;height:26px;` +
	`margin-left:8px;vertical-align:middle;color:inherit;border-radius:4px}` +
	`#k1sso-launcher:hover{background:rgba(127,127,127,.2)}#k1sso-launcher svg{width:18px;height:18px}` +
	`#k1sso-launcher.k1sso-fixed{position:fixed;top:8px;right:8px;z-index:2147483647;background:#fff;` +
	`color:#0b5cab;box-shadow:0 1px 4px rgba(0,0,0,.3)}`
