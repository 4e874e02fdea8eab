package caddymodule

import (
	"net/http"
	"strings"
)

// isNavigation reports whether a request without a valid session is a
// browser loading a page, the only kind of request that is sent to K1 (or
// the tenant picker). Everything else (fetch, XHR, EventSource, images,
// scripts, API clients) gets 401: a redirect to K1 would fail there on CORS
// or be followed into a login page no one sees.
//
// Browsers with Fetch Metadata say what they load: a navigation has
// Sec-Fetch-Mode navigate and a document or frame destination. Without it,
// a GET or HEAD that accepts text/html and is not marked as XHR counts.
func isNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		if mode != "navigate" {
			return false
		}
		switch r.Header.Get("Sec-Fetch-Dest") {
		case "document", "iframe", "frame", "":
			// "" : a browser that sends the mode but not the destination
			// (older Chromium) only navigates in documents.
			return true
		}
		return false
	}
	if r.Header.Get("X-Requested-With") != "" {
		return false
	}
	return acceptsHTML(r.Header.Values("Accept"))
}

// isPageLoad reports whether a request is a browser loading a top-level
// page with GET: a navigation that may take a silent round trip through K1
// (a frame may not be shown K1's pages, a HEAD has no page to show).
func isPageLoad(r *http.Request) bool {
	if r.Method != http.MethodGet || !isNavigation(r) {
		return false
	}
	d := r.Header.Get("Sec-Fetch-Dest")
	return d != "iframe" && d != "frame"
}

// acceptsHTML reports whether an Accept header names text/html (or
// application/xhtml+xml) without refusing it with q=0. A bare */* does not
// count: that is what fetch() and most API clients send.
func acceptsHTML(vals []string) bool {
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if mt != "text/html" && mt != "application/xhtml+xml" {
				continue
			}
			if zeroQ(params) {
				continue
			}
			return true
		}
	}
	return false
}

// zeroQ reports whether media range parameters carry q=0.
func zeroQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			v = strings.TrimSpace(v)
			// 0, 0.0, 0.00 and 0.000 are the spellings of zero.
			return v != "" && strings.Trim(v, "0.") == ""
		}
	}
	return false
}

// unauthorized answers a request that is not a navigation and has no
// valid session: 401 with a WWW-Authenticate challenge and a JSON body
// naming the login URL, never a redirect.
func unauthorized(w http.ResponseWriter, code, login string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="k1sso"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": code, "login": login})
}
