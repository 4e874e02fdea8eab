package caddymodule_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// TestCookiesBoundToDeployment: two sites with the same cookie_secret but
// another client_id or another issuer take none of each other's session or
// login cookies; the same site still does across a secret rotation.
func TestCookiesBoundToDeployment(t *testing.T) {
	w := newWorld(t)
	bob, _ := w.loginAs(t, "bob", "/.k1sso/login")
	// startLogin starts a login of bob's browser at the first site and
	// returns its state.
	startLogin := func() string {
		t.Helper()
		resp := get(t, testenv.NoRedirect(bob.Jar), w.px.URL+"/.k1sso/login?rd=/x&tenant=acme-labs")
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if loc.Query().Get("state") == "" {
			t.Fatalf("no state in %q", resp.Header.Get("Location"))
		}
		return loc.Query().Get("state")
	}

	other := k1devtest.Start(t, nil)
	a := w.s
	a.Port = w.px.Port
	cf := a.Caddyfile(t)
	var bases []string
	for _, edit := range []func(string) string{
		func(cf string) string { return strings.Replace(cf, "client_id bms-proxy", "client_id other-client", 1) },
		func(cf string) string { return strings.Replace(cf, "issuer "+w.k1.URL, "issuer "+other.URL, 1) },
	} {
		s := testenv.Site{K1: w.k1.URL, Upstream: w.up.URL, Users: testenv.DemoUsers(t)}
		site := edit(s.Caddyfile(t))
		cf += site[strings.Index(site, "\nhttp://"):]
		bases = append(bases, "http://127.0.0.1:"+strconv.Itoa(s.Port))
	}
	if err := testenv.LoadCaddyfile(cf); err != nil {
		t.Fatalf("loading three sites: %v", err)
	}
	for _, base := range bases {
		testenv.WaitHTTP(t, base+"/.k1sso/jwks.json")
	}
	if s := testenv.DecodeSeen(t, get(t, bob, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("bob on his own site: %q", s.Header.Get("X-BMS-User"))
	}
	for i, base := range bases {
		what := []string{"another client_id", "another issuer"}[i]
		// The cookie jar sends 127.0.0.1's cookies to every port.
		if s := testenv.DecodeSeen(t, get(t, bob, base+"/x")); s.Header.Get("X-BMS-User") != "" {
			t.Errorf("a site with %s and the same cookie_secret took bob's session: %q", what, s.Header.Get("X-BMS-User"))
		}
		resp := get(t, testenv.NoRedirect(bob.Jar), base+"/.k1sso/callback?code=x&state="+url.QueryEscape(startLogin()))
		if b := body(t, resp); !strings.Contains(b, "did not start in this browser") {
			t.Errorf("a site with %s took the login cookie of another: %d\n%.300s", what, resp.StatusCode, b)
		}
	}
}
