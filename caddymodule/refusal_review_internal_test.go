package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
)

// A request that finds k1sso not started (its store unreadable) is a
// refusal like the others: an error route that takes its 503 gets neither
// k1sso's cookies nor BMS's, nor the store's error text as {err.message}.
func TestNotStartedIsARefusal(t *testing.T) {
	t.Parallel()
	h := newTestHandler(t, func(h *Handler) { h.UpstreamCookies = []string{"BMSSESSION"} })
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A folder under a file: every read and write of the store fails.
	h.shared.store = caddystore.New(&certmagic.FileStorage{Path: filepath.Join(file, "store")}, store.Options{Namespace: "ns"})
	h.shared.running.Store(false)

	r := withErrorRoutes(httptest.NewRequest(http.MethodGet, "/dashboard", nil), caddyhttp.RouteList{answering})
	r.Header.Set("Cookie", "k1sso=abc; k1sso-login-x=def; BMSSESSION=native; other=1")
	next := &recordingNext{}
	err := h.ServeHTTP(httptest.NewRecorder(), r, next)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) || he.StatusCode != http.StatusServiceUnavailable || next.got != nil {
		t.Fatalf("want a 503 refusal: %v (next ran: %v)", err, next.got != nil)
	}
	if strings.Contains(he.Err.Error(), "assertion") || strings.Contains(he.Err.Error(), file) {
		t.Fatalf("the error routes see the store's error: %q", he.Err.Error())
	}
	if c := r.Header.Get("Cookie"); c != "other=1" {
		t.Fatalf("the error routes get the cookies %q", c)
	}
}

// Caddy runs the error routes on the request as the client sent it, not
// as a rewrite before k1sso left it: whether they take a refusal is
// decided on that one too.
func TestRefusalMatchesTheOriginalRequest(t *testing.T) {
	t.Parallel()
	h := &Handler{cfg: &config{landingPage: "/", issuer: "https://k1.example"}}
	onApp := caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/app/*"}}}, Handlers: answering.Handlers}
	onRewritten := caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/x"}}}, Handlers: answering.Handlers}
	for _, c := range []struct {
		name    string
		route   caddyhttp.Route
		toRoute bool
	}{
		{"an error route for the path sent", onApp, true},
		{"an error route for the rewritten path", onRewritten, false},
	} {
		// handle_path /app/* stripped the prefix before k1sso.
		r := withErrorRoutes(httptest.NewRequest(http.MethodGet, "/app/x", nil), caddyhttp.RouteList{c.route})
		orig := http.Request{Method: r.Method, RequestURI: r.RequestURI, URL: &url.URL{Path: "/app/x"}}
		r = r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, orig))
		r.URL.Path, r.RequestURI = "/x", "/x"
		rec := httptest.NewRecorder()
		err := h.refuse(rec, r, http.StatusForbidden, pageData{Title: "Forbidden"})
		if got := err != nil; got != c.toRoute {
			t.Fatalf("%s: to the error routes %v, want %v (%d %.80s)", c.name, got, c.toRoute, rec.Code, rec.Body.String())
		}
	}
}
