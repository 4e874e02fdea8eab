package caddymodule

import (
	"net/http"
)

// whoami is the JSON of /.k1sso/whoami.
type whoami struct {
	Email      string   `json:"email"`
	Subject    string   `json:"k1_sub"`
	Name       string   `json:"name,omitempty"`
	Company    string   `json:"k1_company,omitempty"`
	BMSUser    string   `json:"bms_user,omitempty"`
	Tenant     string   `json:"tenant,omitempty"`
	TenantName string   `json:"tenant_name,omitempty"`
	Roles      []string `json:"roles"`
	Expires    int64    `json:"expires"`
}

// serveWhoami answers the current identity, or 401 without a session. A
// session waiting for its tenant is answered without the BMS fields.
func (h *Handler) serveWhoami(w http.ResponseWriter, r *http.Request, rq *request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.methodNotAllowed(w, r, "GET, HEAD")
	}
	if !rq.signedIn() {
		return h.refuseJSON(w, r, http.StatusUnauthorized, "Unauthorized: no session", map[string]string{"error": "no session"})
	}
	e := rq.entry
	out := whoami{Email: e.s.Email(), Subject: e.s.Subject(), Expires: e.s.Expires(), Roles: []string{}}
	if full := h.fullSession(r, rq); full != nil {
		out.Name, out.Company = full.Name, full.Company
	}
	if rq.state == sessionNoAccount {
		return h.refuseJSON(w, r, http.StatusUnauthorized, "Unauthorized: no BMS account for this session",
			map[string]string{"error": "no BMS account for this session"})
	}
	if d := rq.id; d != nil {
		out.BMSUser, out.Tenant, out.TenantName = d.acc.BMSUser, d.acc.Tenant, d.acc.TenantName
		if d.acc.Roles != nil {
			out.Roles = d.acc.Roles
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// serveJWKS publishes the public key of X-K1-Assertion.
func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.methodNotAllowed(w, r, "GET, HEAD")
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/jwk-set+json")
	hdr.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(h.shared.signer.jwks)
	return nil
}
