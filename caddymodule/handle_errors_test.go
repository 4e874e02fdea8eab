package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// A site's handle_errors restyles k1sso's refusals; without one (or with
// one for other statuses) the built-in pages stay.
func TestHandleErrorsRestylesRefusals(t *testing.T) {
	styled := "handle_errors {\n\t\trespond \"styled {err.status_code}\"\n\t}"
	only404 := "handle_errors 404 {\n\t\trespond \"styled {err.status_code}\"\n\t}"
	w := newWorld(t, "enforce")
	for _, c := range []struct {
		name, extra string
		restyled    bool
	}{
		{"handle_errors", styled, true},
		{"handle_errors 404", only404, false},
		{"none", "", false},
	} {
		w.s.Extra = c.extra
		w.reload(t)

		// carol has no BMS account: the login ends in a 403.
		_, resp := w.loginAs(t, "carol", "/.k1sso/login?rd=/dashboard")
		b := body(t, resp)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: carol got %d %.300s", c.name, resp.StatusCode, b)
		}
		builtIn := strings.Contains(b, "carol@other.example") && strings.Contains(b, "/.k1sso/logout")
		if c.restyled && (b != "styled 403" || builtIn) {
			t.Fatalf("%s: the 403 is not restyled: %.300s", c.name, b)
		}
		if !c.restyled && !builtIn {
			t.Fatalf("%s: the 403 lost the built-in page: %.300s", c.name, b)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("%s: 403 Cache-Control %q", c.name, cc)
		}

		// An API call without a session: 401 with its challenge either way.
		resp = get(t, http.DefaultClient, w.px.URL+"/api/x", "X-Requested-With", "XMLHttpRequest")
		b = body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("%s: api call got %d %v", c.name, resp.StatusCode, resp.Header)
		}
		if c.restyled != (b == "styled 401") || !c.restyled && !strings.Contains(b, `"login"`) {
			t.Fatalf("%s: api call body %.300s", c.name, b)
		}

		// whoami without a session: its JSON 401, restyled like the rest.
		resp = get(t, http.DefaultClient, w.px.URL+"/.k1sso/whoami")
		b = body(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || c.restyled != (b == "styled 401") || !c.restyled && !strings.Contains(b, `"no session"`) {
			t.Fatalf("%s: whoami without a session: %d %.300s", c.name, resp.StatusCode, b)
		}
	}
	for _, s := range w.up.Requests() {
		t.Fatalf("upstream got %s though every request was refused", s.Path)
	}
}

// An error route that forwards (reverse_proxy in handle_errors) gets a
// refused request as next would: without the identity headers a client
// sent and without k1sso's cookies.
func TestHandleErrorsProxyGetsNoIdentity(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	up, errUp := testenv.NewUpstream(t), testenv.NewUpstream(t)
	w := &world{k1: k1, up: up}
	w.s = testenv.Site{K1: k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t), Options: []string{"enforce"},
		Extra: "handle_errors {\n\t\treverse_proxy " + strings.TrimPrefix(errUp.URL, "http://") + "\n\t}"}
	w.px = testenv.StartCaddy(t, w.s)
	bob, resp := w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	body(t, resp)
	up.Reset()

	forged := []string{"X-BMS-User", "admin", "X-K1-Email", "admin@acme.example", "X-Original-URL", "/admin"}
	for _, c := range []struct {
		name   string
		client *http.Client
		path   string
		hdr    []string
		status int
	}{
		{"bad path with a session", bob, "/a//b", nil, http.StatusBadRequest},
		{"unknown endpoint with a session", bob, "/.k1sso/nope", nil, http.StatusNotFound},
		{"api call with a stale cookie", http.DefaultClient, "/api/x", []string{"X-Requested-With", "XMLHttpRequest", "Cookie", "k1sso=forged; bms=1"}, http.StatusUnauthorized},
	} {
		errUp.Reset()
		resp := get(t, c.client, w.px.URL+c.path, append(append([]string(nil), forged...), c.hdr...)...)
		s := testenv.DecodeSeen(t, resp)
		if resp.StatusCode != http.StatusOK || len(errUp.Requests()) != 1 {
			t.Fatalf("%s: got %d, the error route's upstream saw %d requests", c.name, resp.StatusCode, len(errUp.Requests()))
		}
		for _, h := range []string{"X-Bms-User", "X-K1-Email", "X-Bms-Tenant", "X-K1-Subject", "X-Original-Url"} {
			if v := s.Header.Get(h); v != "" {
				t.Fatalf("%s: the error route forwarded %s: %q", c.name, h, v)
			}
		}
		for _, line := range s.Header.Values("Cookie") {
			if strings.Contains(line, "k1sso") {
				t.Fatalf("%s: the error route forwarded k1sso's cookie: %.80s", c.name, line)
			}
		}
	}
	for _, s := range up.Requests() {
		t.Fatalf("the site's upstream got %s though every request was refused", s.Path)
	}
}
