package caddymodule

import (
	"net/http"
	"net/url"

	"go.uber.org/zap"
)

// chooseAccount picks the BMS account a login lands in. No account at all is
// a refusal naming the email; a requested tenant must be one of the user's;
// several accounts and no request leave the choice to the tenant picker
// (nil account, nil failure).
func (h *Handler) chooseAccount(email, tenant string) (*account, *loginFailure) {
	accs := h.shared.dir.accounts(email)
	if len(accs) == 0 {
		f := fail(http.StatusForbidden, "no_bms_account", "No BMS account",
			"The KaseyaOne account "+email+" has no BMS account here. Ask your BMS administrator to add it, or sign out and use another KaseyaOne account.")
		f.links = []pageLink{{Href: prefix + "logout", Text: "Sign out of KaseyaOne"}}
		return nil, f
	}
	if tenant != "" {
		for _, a := range accs {
			if a.Tenant == tenant {
				return a, nil
			}
		}
		f := fail(http.StatusForbidden, "tenant_not_allowed", "No account in this tenant",
			"The KaseyaOne account "+email+" has no BMS account in tenant "+tenant+".")
		f.links = []pageLink{{Href: prefix + "login", Text: "Sign in to another tenant"}}
		return nil, f
	}
	if len(accs) == 1 {
		return accs[0], nil
	}
	return nil, nil
}

// serveTenant is the tenant picker: GET lists the user's tenants, POST (with
// a CSRF token) puts the chosen one in the session.
func (h *Handler) serveTenant(w http.ResponseWriter, r *http.Request, rq *request) error {
	secure := rq.secure
	sess := h.fullSession(r, rq)
	if sess == nil {
		http.Redirect(w, r, prefix+"login?rd="+url.QueryEscape(h.redirectTarget(r.URL.Query().Get("rd"))), http.StatusFound)
		return nil
	}
	accs := h.shared.dir.accounts(sess.Email)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		rd := h.redirectTarget(r.URL.Query().Get("rd"))
		d := pageData{Title: "Choose a tenant", Message: "Your KaseyaOne account " + sess.Email + " has BMS accounts in several tenants.",
			Action: prefix + "tenant", CSRF: h.csrfToken(sess.ID), RD: rd}
		for _, a := range accs {
			d.Tenants = append(d.Tenants, tenantOption{ID: a.Tenant, Name: a.TenantName, User: a.BMSUser})
		}
		if len(d.Tenants) == 0 {
			d.Message = "Your KaseyaOne account " + sess.Email + " has no BMS account here."
		}
		h.page(w, r, http.StatusOK, d)
		return nil
	case http.MethodPost:
	default:
		return h.methodNotAllowed(w, r, "GET, HEAD, POST")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil || !h.validCSRF(sess.ID, r.PostForm.Get("csrf_token")) {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "Form expired", Message: "This form is no longer valid. Go back and try again.",
			Links: []pageLink{{Href: prefix + "tenant", Text: "Choose a tenant"}}})
	}
	tenant := r.PostForm.Get("tenant")
	var acc *account
	for _, a := range accs {
		if a.Tenant == tenant {
			acc = a
		}
	}
	if acc == nil {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "No account in this tenant",
			Message: "The KaseyaOne account " + sess.Email + " has no BMS account in that tenant."})
	}
	// The integration switch: the picker follows a login without tenant.
	if f := h.tenantAllowed(r.Context(), sess, acc.Tenant); f != nil {
		return h.refuse(w, r, f.status, pageData{Title: f.title, Message: f.message, Links: f.links})
	}
	sess.Tenant = acc.Tenant
	if err := h.shared.writeSession(w, r, sess, secure); err != nil {
		// The session fitted the cookie chunks without a tenant but not
		// with this one (a large ID token and a long tenant id). Nothing
		// was written: the browser keeps the session it has.
		h.logger.Warn("writing the session cookie", zap.String("tenant", acc.Tenant), zap.Error(err))
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Tenant not chosen",
			Message: "Your KaseyaOne sign-in is too large to be stored in your browser together with this tenant. Choose another tenant, or ask your BMS administrator.",
			Links:   []pageLink{{Href: prefix + "tenant", Text: "Choose a tenant"}, {Href: prefix + "logout", Text: "Sign out", Secondary: true}}})
	}
	h.logger.Info("tenant chosen", zap.String("k1_sub", sess.Subject), zap.String("tenant", sess.Tenant))
	http.Redirect(w, r, h.redirectTarget(r.PostForm.Get("rd")), http.StatusSeeOther)
	return nil
}
