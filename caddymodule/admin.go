package caddymodule

import (
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"go.uber.org/zap"

	"github.com/k1sso/k1sso/sessioncookie"
)

// The admin page: /.k1sso/admin shows the switch of every tenant the
// signed-in user administers (role admin in the users file). Nothing is
// shown before a K1 sign-in: a browser without one is sent to K1 first
// (adminPurpose), or the browser's session says who it is. Every change is
// a POST with a CSRF token that starts another K1 sign-in (prompt=login,
// max_age=0), applied by completePurpose (integration.go) only for a fresh
// sign-in of an admin of that tenant. None of these sign-ins writes a
// session.

// adminPurpose marks a sign-in made to see the admin page
// (loginState.Purpose).
const adminPurpose = "admin"

// adminCookie holds a random value the admin form's CSRF token is bound to,
// so the form works for a browser without a k1sso session, and the admin
// page's K1 sign-in. It is signed and encrypted with the login codecs
// (whose MaxAge makes it short-lived) under its own name, so no other
// cookie decodes as it. The hot path never reads it: it is no session.
const (
	adminCookie    = "k1sso-admin"
	adminCookieAge = 30 * time.Minute
)

// adminDone is the message shown after a change was applied.
const adminDone = "Operation is completed successfully."

// adminNonce is the admin cookie's content.
type adminNonce struct {
	N      string `json:"n"`
	Issued int64  `json:"i"`
	// The K1 sign-in made for the admin page, valid adminCookieAge from
	// SignedIn; empty before one.
	Email    string `json:"e,omitempty"`
	Subject  string `json:"s,omitempty"`
	SID      string `json:"sid,omitempty"`
	SignedIn int64  `json:"a,omitempty"`
}

type adminData struct {
	Title   string
	Done    string
	Viewer  string
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
func (h *Handler) serveAdmin(w http.ResponseWriter, r *http.Request, rq *request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return h.methodNotAllowed(w, r, "GET, HEAD, POST")
	}
	if h.shared.revocations.stale(time.Now()) {
		// Who is signed in cannot be checked against revocations: a 503,
		// not a sign-in that would come back here in a loop.
		w.Header().Set("Retry-After", "5")
		return h.refuse(w, r, http.StatusServiceUnavailable, pageData{Title: "Integration settings temporarily unavailable",
			Message: "The session store is unreachable, so sign-ins cannot be checked right now. Please try again in a moment."})
	}
	n, _ := h.adminNonce(r, rq.secure)
	viewer := h.adminViewer(rq, n)
	if r.Method != http.MethodPost {
		if viewer == "" {
			if wantsJSON(r) {
				return h.challenge(w, r, "unauthorized", prefix+"admin")
			}
			return h.startLogin(w, r, rq, loginRequest{rd: prefix + "admin", purpose: adminPurpose})
		}
		return h.adminPage(w, r, rq.secure, n, viewer)
	}
	back := []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil || viewer == "" || !h.validAdminCSRF(n, r.PostForm.Get("csrf_token")) {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "Form expired",
			Message: "This form is no longer valid. Reload the integration settings and try again.", Links: back})
	}
	tenant := r.PostForm.Get("tenant")
	known := false
	for _, t := range h.shared.dir.tenants() {
		known = known || t.ID == tenant
	}
	if !validTenantID(tenant) || !known {
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Unknown tenant", Message: "There is no such tenant in the BMS directory.", Links: back})
	}
	// The page offers only the viewer's tenants; the sign-in for the
	// change is checked again, whoever signs in then.
	if acc := h.shared.dir.account(viewer, tenant); acc == nil || !acc.hasRole("admin") {
		f := notTenantAdmin(viewer, tenant)
		return h.refuse(w, r, f.status, pageData{Title: f.title, Message: f.message, Links: back})
	}
	payload := "off"
	if r.PostForm.Get("enabled") == "on" {
		payload = "on"
	}
	return h.startLogin(w, r, rq, loginRequest{rd: prefix + "admin", tenant: tenant, fresh: true,
		purpose: integrationPurpose, payload: payload})
}

// adminTenants lists the tenants email administers.
func (h *Handler) adminTenants(email string) []tenantOption {
	var out []tenantOption
	for _, t := range h.shared.dir.tenants() {
		if acc := h.shared.dir.account(email, t.ID); acc != nil && acc.hasRole("admin") {
			out = append(out, t)
		}
	}
	return out
}

// adminPage renders the switches of the viewer's tenants with their
// current state, read from the store (not the cache): an admin expects to
// see the latest change.
func (h *Handler) adminPage(w http.ResponseWriter, r *http.Request, secure bool, n adminNonce, viewer string) error {
	tenants := h.adminTenants(viewer)
	if len(tenants) == 0 {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "Not a BMS administrator",
			Message: "The KaseyaOne account " + viewer + " is not a BMS administrator of any tenant here, so it cannot see the KaseyaOne integration settings.",
			Links:   []pageLink{{Href: prefix + "logout", Text: "Sign out to use another KaseyaOne account"}}})
	}
	d := adminData{Title: "KaseyaOne integration", Action: prefix + "admin", Nonce: randomID(16), Wide: true, Viewer: viewer}
	d.CSRF = h.adminCSRF(w, secure, n)
	done := r.URL.Query().Get("done")
	for _, t := range tenants {
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
	w.Header().Set("Cache-Control", "no-store")
	h.pageHeaders(w, d.Nonce)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_ = adminTmpl.Execute(w, d)
	return nil
}

// adminViewer is the verified K1 email of who looks at the admin page: the
// admin page's own sign-in (in the admin cookie, until adminCookieAge after
// it) or the browser's session; "" for nobody. Both end with a revocation
// of their K1 session or user.
func (h *Handler) adminViewer(rq *request, n adminNonce) string {
	if n.Email != "" && time.Since(time.Unix(n.SignedIn, 0)) < adminCookieAge {
		c, ok := newCachedSession(&session{SID: n.SID, Subject: n.Subject, Email: n.Email, Issued: n.SignedIn})
		if revoked, stale := h.revocationState(&sessionEntry{s: c}); ok && !revoked && !stale {
			return n.Email
		}
	}
	if rq.signedIn() {
		return rq.entry.s.Email()
	}
	return ""
}

// rememberAdmin keeps a sign-in of an admin of some tenant in the admin
// cookie, for the admin page only. The nonce of the browser's open forms
// is kept.
func (h *Handler) rememberAdmin(w http.ResponseWriter, r *http.Request, secure bool, sess *session) {
	if len(h.adminTenants(sess.Email)) == 0 {
		return
	}
	now := time.Now()
	// Like a session, the sign-in a logout must end has its login record
	// before its cookie: a K1 logout of its sid or user revokes only what
	// has one.
	rec := &session{SID: sess.SID, Subject: sess.Subject, Email: sess.Email, Expires: now.Add(adminCookieAge).Unix()}
	if err := h.recordLogin(r.Context(), rec); err != nil {
		h.logger.Warn("storing the login record of an admin sign-in failed", zap.Error(err))
		return
	}
	n, ok := h.adminNonce(r, secure)
	if !ok {
		n = adminNonce{N: randomID(18), Issued: now.Unix()}
	}
	n.Email, n.Subject, n.SID, n.SignedIn = sess.Email, sess.Subject, sess.SID, now.Unix()
	h.setAdminCookie(w, secure, n)
}

func (h *Handler) setAdminCookie(w http.ResponseWriter, secure bool, n adminNonce) bool {
	v, err := securecookie.EncodeMulti(adminCookie, &n, h.shared.codecs.login...)
	if err != nil {
		return false
	}
	http.SetCookie(w, sessioncookie.New(sessioncookie.Name(adminCookie, secure), v, secure, adminCookieAge))
	return true
}

// adminCSRF returns the form token, renewing the admin cookie it is bound
// to when it is old (the sign-in in it keeps its own time).
func (h *Handler) adminCSRF(w http.ResponseWriter, secure bool, n adminNonce) string {
	if n.N != "" && time.Since(time.Unix(n.Issued, 0)) < adminCookieAge/2 {
		return h.csrfToken("admin:" + n.N)
	}
	n.N, n.Issued = randomID(18), time.Now().Unix()
	if !h.setAdminCookie(w, secure, n) {
		return ""
	}
	return h.csrfToken("admin:" + n.N)
}

func (h *Handler) adminNonce(r *http.Request, secure bool) (adminNonce, bool) {
	var n adminNonce
	v := sessioncookie.Value(r, sessioncookie.Name(adminCookie, secure))
	if v == "" || securecookie.DecodeMulti(adminCookie, v, &n, h.shared.codecs.login...) != nil ||
		n.N == "" || time.Since(time.Unix(n.Issued, 0)) > adminCookieAge {
		return adminNonce{}, false
	}
	return n, true
}

func (h *Handler) validAdminCSRF(n adminNonce, token string) bool {
	return n.N != "" && h.validCSRF("admin:"+n.N, token)
}
