package caddymodule

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
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

// refuse answers a request k1sso will not serve as asked. When the site's
// error routes (a Caddyfile's handle_errors) would answer it, the refusal
// is returned as a caddyhttp.Error for them to write, with the page's text
// as {err.message}; otherwise the built-in page is written. Headers set
// before (WWW-Authenticate, Retry-After, cleared cookies) stay either way:
// Caddy runs the error routes on the same response.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, status int, d pageData) error {
	msg := d.Title
	if d.Message != "" {
		msg += ": " + d.Message
	}
	if err := h.refusal(w, r, status, msg); err != nil {
		return err
	}
	h.page(w, r, status, d)
	return nil
}

// refuseJSON is refuse for an API answer: the JSON body v by default.
func (h *Handler) refuseJSON(w http.ResponseWriter, r *http.Request, status int, msg string, v any) error {
	if err := h.refusal(w, r, status, msg); err != nil {
		return err
	}
	writeJSON(w, status, v)
	return nil
}

// challenge is unauthorized (navigation.go) as a refusal: the
// WWW-Authenticate challenge is set for the error routes' answer too.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, code, login string) error {
	w.Header().Set("WWW-Authenticate", `Bearer realm="k1sso"`)
	if err := h.refusal(w, r, http.StatusUnauthorized, "Unauthorized: sign in at "+login); err != nil {
		return err
	}
	unauthorized(w, code, login)
	return nil
}

// refusal returns the caddyhttp.Error for a refusal when the server's error
// routes take it, nil when k1sso is to write its own answer. An error
// route may forward (reverse_proxy): before it runs, the request loses the
// identity headers a client sent and k1sso's cookies, as it would before
// next, and BMS's session cookies (upstream_cookies): a refused request
// never reaches BMS with them (a revoked session's are expired), so an
// error route that forwards must not send it as the user they name. A
// request that declared trailers keeps the built-in answer: its trailers
// arrive only when an error route reads the body, after anything k1sso
// could strip.
func (h *Handler) refusal(w http.ResponseWriter, r *http.Request, status int, msg string) error {
	if r.Trailer != nil {
		return nil
	}
	herr := caddyhttp.Error(status, errors.New(msg))
	if !errorRoutesTake(r, herr) {
		return nil
	}
	stripIdentityHeaders(r.Header, h.Headers)
	dropCookies(r, func(name string) bool { return slices.Contains(h.UpstreamCookies, name) })
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	return herr
}

// errorRoutesTake reports whether the server's error routes would answer
// herr for r. Caddy answers an error no error route matches with the bare
// status, and a site's handle_errors is compiled to a route matching its
// hosts (with the status codes inside), so k1sso's page stays on the sites
// and for the statuses that have none.
func errorRoutesTake(r *http.Request, herr caddyhttp.HandlerError) bool {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Errors == nil || len(srv.Errors.Routes) == 0 {
		return false
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return false
	}
	// The matchers (`handle_errors 4xx` is an expression on
	// {http.error.status_code}) read the error from the replacer. Caddy sets
	// the same values again when it runs the routes; a page written
	// instead must not leave them behind.
	defer func() {
		for _, k := range []string{"http.error", "http.error.status_code", "http.error.status_text",
			"http.error.id", "http.error.trace", "http.error.message"} {
			repl.Delete(k)
		}
	}()
	return routesTake(srv.Errors.Routes, asErrorRoutesSee(srv.Errors.WithError(r, herr)), 0)
}

// asErrorRoutesSee is r as Caddy hands it to the error routes: with the
// method, URL and remote address the client sent, before any rewrite
// (handle_path, uri strip_prefix) that k1sso's r went through. Matching
// the rewritten one would take a refusal no error route answers (a bare
// status) or leave one an error route would restyle.
func asErrorRoutesSee(r *http.Request) *http.Request {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	if !ok || orig.URL == nil {
		return r
	}
	cp := *r
	u := *orig.URL
	cp.URL, cp.Method, cp.RequestURI, cp.RemoteAddr = &u, orig.Method, orig.RequestURI, orig.RemoteAddr
	return &cp
}

// routesTake reports whether a route of routes matches r and has a
// handler other than a subroute, or a subroute whose routes take r.
// Bounded by depth: configs nest a few subroutes, never many.
func routesTake(routes caddyhttp.RouteList, r *http.Request, depth int) bool {
	if depth > 8 {
		return false
	}
	groups := map[string]bool{}
	for _, rt := range routes {
		if rt.Group != "" && groups[rt.Group] {
			continue
		}
		if len(rt.MatcherSets) > 0 && !rt.MatcherSets.AnyMatch(r) {
			continue
		}
		if rt.Group != "" {
			groups[rt.Group] = true
		}
		for _, mh := range rt.Handlers {
			sub, ok := mh.(*caddyhttp.Subroute)
			if !ok || routesTake(sub.Routes, r, depth+1) {
				return true
			}
		}
		if rt.Terminal {
			return false
		}
	}
	return false
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
	return h.refuse(w, r, http.StatusMethodNotAllowed, pageData{Title: "Method not allowed"})
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
