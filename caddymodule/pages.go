package caddymodule

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
)

//go:embed pages/*.html
var pageFS embed.FS

// Every page is pages/layout.html around its own body and styles; the
// page file comes first so that it is the template Execute runs.
var (
	pageTmpl  = template.Must(template.ParseFS(pageFS, "pages/page.html", "pages/layout.html"))
	adminTmpl = template.Must(template.ParseFS(pageFS, "pages/admin.html", "pages/layout.html"))
)

// pageData fills pages/page.html. Every field is escaped by html/template.
type pageData struct {
	Title   string
	Message string
	Detail  string
	Links   []pageLink
	// Tenant picker
	Tenants []tenantOption
	Action  string
	CSRF    string
	RD      string
	Nonce   string
	// Confirm is a one-button POST form (e.g. "Sign out").
	Confirm *pageForm
	Wide    bool
}

// pageForm is a one-button POST form with a CSRF token.
type pageForm struct {
	Action, CSRF, Button string
}

type pageLink struct {
	Href      string
	Text      string
	Secondary bool
}

type tenantOption struct {
	ID, Name, User string
}

// page writes a k1sso page. Pages are never cached and carry a strict
// Content-Security-Policy: they run no script and load nothing.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	d.Nonce = randomID(16)
	h.pageHeaders(w, d.Nonce)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = pageTmpl.Execute(w, d)
}

// pageHeaders sets the headers of every k1sso HTML page: never cached, never
// framed, and a CSP that runs no script and loads nothing but the style
// with the given nonce. form-action must allow K1's origin too: browsers
// apply it to the redirect that follows a form POST (admin switch, logout).
func (h *Handler) pageHeaders(w http.ResponseWriter, styleNonce string) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	style := ""
	if styleNonce != "" {
		style = "; style-src 'nonce-" + styleNonce + "'"
	}
	hdr.Set("Content-Security-Policy", "default-src 'none'"+style+"; form-action 'self' "+h.cfg.issuerOrigin()+
		"; frame-ancestors 'none'; base-uri 'none'")
}

// retryLink is a "Try again" link to the request's own address. Like
// every link and redirect k1sso builds from a request, it goes through
// localTarget: "//evil.example/x" is a path to the server but a link to
// another site, so anything but a clean local path becomes the landing page.
func (h *Handler) retryLink(r *http.Request) pageLink {
	return pageLink{Href: h.redirectTarget(r.URL.RequestURI()), Text: "Try again"}
}

// methodNotAllowed answers a method an endpoint does not serve.
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) error {
	w.Header().Set("Allow", allow)
	h.page(w, r, http.StatusMethodNotAllowed, pageData{Title: "Method not allowed"})
	return nil
}

// writeJSON writes a JSON answer that is never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
