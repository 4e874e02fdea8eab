package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A refusal goes to the error routes that take it, stripped of the
// client's identity headers and k1sso's cookies; else the page is written.
func TestRefusalToErrorRoutes(t *testing.T) {
	t.Parallel()
	h := &Handler{cfg: &config{landingPage: "/", issuer: "https://k1.example"}}
	nested := caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{Routes: caddyhttp.RouteList{answering}}}}
	emptySub := caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{&caddyhttp.Subroute{}}}
	for _, c := range []struct {
		name    string
		routes  caddyhttp.RouteList // nil: no server in the context
		trailer bool
		toRoute bool
	}{
		{name: "no server"},
		{name: "no error routes", routes: caddyhttp.RouteList{}},
		{name: "an error route", routes: caddyhttp.RouteList{answering}, toRoute: true},
		{name: "a subroute that answers", routes: caddyhttp.RouteList{nested}, toRoute: true},
		{name: "a subroute that matches nothing", routes: caddyhttp.RouteList{emptySub}},
		{name: "a terminal route before the answer", routes: caddyhttp.RouteList{{Terminal: true, Handlers: emptySub.Handlers}, answering}},
		{name: "declared trailers", routes: caddyhttp.RouteList{answering}, trailer: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/x", nil)
			r.Header.Set("X-Bms-User", "mallory")
			r.Header.Set("Cookie", "k1sso=abc; bms=1")
			if c.trailer {
				r.Trailer = http.Header{"X-Other": nil}
			}
			if c.routes != nil {
				r = withErrorRoutes(r, c.routes)
			}
			rec := httptest.NewRecorder()
			rec.Header().Set("Retry-After", "5")
			err := h.refuse(rec, r, http.StatusForbidden, pageData{Title: "Wrong KaseyaOne company", Message: "Sign in with Acme."})
			if rec.Header().Get("Retry-After") != "5" {
				t.Fatal("a header set before the refusal is gone")
			}
			if !c.toRoute {
				if err != nil || rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Wrong KaseyaOne company") {
					t.Fatalf("want the built-in page: %v %d %.100s", err, rec.Code, rec.Body.String())
				}
				return
			}
			var he caddyhttp.HandlerError
			if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || he.Err.Error() != "Wrong KaseyaOne company: Sign in with Acme." {
				t.Fatalf("want a caddyhttp.Error 403: %#v", err)
			}
			if rec.Body.Len() != 0 || rec.Header().Get("Content-Security-Policy") != "" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("the error routes' answer is prejudged: %v %q", rec.Header(), rec.Body.String())
			}
			if r.Header.Get("X-Bms-User") != "" || r.Header.Get("Cookie") != "bms=1" {
				t.Fatalf("the error routes get %v", r.Header)
			}
		})
	}
}
