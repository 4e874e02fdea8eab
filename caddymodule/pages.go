package caddymodule

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
)

//go:embed pages/*.html
var pageFS embed.FS

var pageTmpl = template.Must(template.ParseFS(pageFS, "pages/page.html"))

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
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+d.Nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = pageTmpl.Execute(w, d)
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
