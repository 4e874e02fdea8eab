package caddymodule

import (
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
)

// The admin page: /.k1sso/admin shows one switch per tenant of the
// directory. Viewing it needs nothing (operators may put basic_auth in
// front, see examples/admin-basic-auth.Caddyfile); every change is a POST
// with a CSRF token that starts a K1 sign-in with prompt=login, and is
// applied by completePurpose (integration.go) only for a fresh sign-in of an
// admin of that tenant.

// adminCookie holds a random value the admin form's CSRF token is bound to,
// so the form works for a browser without a k1sso session. It is signed and
// encrypted with the login codecs (whose MaxAge makes it short-lived) under
// its own name, so no other cookie decodes as it.
const (
	adminCookie    = "k1sso-admin"
	adminCookieAge = 30 * time.Minute
)

// adminDone is the message shown after a change was applied.
const adminDone = "Operation is completed successfully."

type adminNonce struct {
	N      string `json:"n"`
	Issued int64  `json:"i"`
}

type adminData struct {
	Title   string
	Done    string
	Tenants []adminRow
	CSRF    string
	Action  string
	Nonce   string
	Wide    bool
}

type adminRow struct {
	ID, Name  string
	Enabled   bool
	Default   bool // never switched: integration_default applies
	Company   string
	ChangedBy string
	ChangedAt string
	Error     bool // the state could not be read
}

// serveAdmin is /.k1sso/admin: GET shows the switches, POST starts a change.
func (h *Handler) serveAdmin(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.adminPage(w, r)
		return nil
	case http.MethodPost:
	default:
		return h.methodNotAllowed(w, r, "GET, HEAD, POST")
	}
	back := []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil || !h.validAdminCSRF(r, r.PostForm.Get("csrf_token")) {
		h.page(w, r, http.StatusForbidden, pageData{Title: "Form expired",
			Message: "This form is no longer valid. Reload the integration settings and try again.", Links: back})
		return nil
	}
	tenant := r.PostForm.Get("tenant")
	known := false
	for _, t := range h.shared.dir.tenants() {
		known = known || t.ID == tenant
	}
	if !validTenantID(tenant) || !known {
		h.page(w, r, http.StatusBadRequest, pageData{Title: "Unknown tenant", Message: "There is no such tenant in the BMS directory.", Links: back})
		return nil
	}
	payload := "off"
	if r.PostForm.Get("enabled") == "on" {
		payload = "on"
	}
	// prompt=login: the change needs the admin to sign in now, not an
	// older K1 session.
	return h.startLogin(w, r, loginRequest{rd: prefix + "admin", tenant: tenant, prompt: "login",
		purpose: integrationPurpose, payload: payload})
}

// adminPage renders the switches with their current state, read from the
// store (not the cache): an admin expects to see the latest change.
func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request) {
	d := adminData{Title: "KaseyaOne integration", Action: prefix + "admin", Nonce: randomID(16), Wide: true}
	d.CSRF = h.adminCSRF(w, r)
	done := r.URL.Query().Get("done")
	for _, t := range h.shared.dir.tenants() {
		row := adminRow{ID: t.ID, Name: t.Name}
		st, err := h.integration(r.Context(), t.ID, true)
		if err != nil {
			row.Error = true
		} else {
			row.Enabled, row.Default, row.Company, row.ChangedBy = st.Enabled, !st.stored, st.Company, st.ChangedBy
			if !st.ChangedAt.IsZero() {
				row.ChangedAt = st.ChangedAt.UTC().Format("2006-01-02 15:04:05 UTC")
			}
		}
		if done != "" && done == t.ID {
			d.Done = adminDone
		}
		d.Tenants = append(d.Tenants, row)
	}
	h.pageHeaders(w, d.Nonce)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_ = adminTmpl.Execute(w, d)
}

// adminCSRF returns the form token, setting the admin cookie it is bound to
// when the browser has none (or an old one).
func (h *Handler) adminCSRF(w http.ResponseWriter, r *http.Request) string {
	if n, ok := h.adminNonce(r); ok && time.Since(time.Unix(n.Issued, 0)) < adminCookieAge/2 {
		return h.csrfToken("admin:" + n.N)
	}
	secure := h.secure(r)
	n := adminNonce{N: randomID(18), Issued: time.Now().Unix()}
	v, err := securecookie.EncodeMulti(adminCookie, &n, h.shared.codecs.login...)
	if err != nil {
		return ""
	}
	http.SetCookie(w, newCookie(cookieName(adminCookie, secure), v, secure, adminCookieAge))
	return h.csrfToken("admin:" + n.N)
}

func (h *Handler) adminNonce(r *http.Request) (adminNonce, bool) {
	var n adminNonce
	v := cookieValue(r, cookieName(adminCookie, h.secure(r)))
	if v == "" || securecookie.DecodeMulti(adminCookie, v, &n, h.shared.codecs.login...) != nil ||
		n.N == "" || time.Since(time.Unix(n.Issued, 0)) > adminCookieAge {
		return adminNonce{}, false
	}
	return n, true
}

func (h *Handler) validAdminCSRF(r *http.Request, token string) bool {
	n, ok := h.adminNonce(r)
	return ok && h.validCSRF("admin:"+n.N, token)
}
