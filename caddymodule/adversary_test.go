package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// TestPathOverrideHeadersNeverForwarded: headers that make servers behind a
// proxy route by another path than the request line's (X-Original-URL and
// X-Rewrite-URL in IIS rewrite setups, Symfony and Zend; X-Original-URI
// and X-Forwarded-Uri of auth proxies) would let a request to a public
// path reach any page in enforce mode. k1sso decides on the forwarded
// path, so none of them is forwarded, in any spelling, with or without a
// session.
func TestPathOverrideHeadersNeverForwarded(t *testing.T) {
	h := newHostile(t, "enforce", "public /static/*")
	names := []string{"X-Original-URL", "x-original-url", "X_Original_URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri"}
	send := func(c *http.Client) testenv.Seen {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.px.URL+"/static/app.css", nil)
		for _, n := range names {
			req.Header[n] = []string{"/admin"} // raw keys: sent as written
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.DecodeSeen(t, resp)
	}
	check := func(what string, s testenv.Seen) {
		t.Helper()
		for k, v := range s.Header {
			n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			if n == "x-original-url" || n == "x-rewrite-url" || n == "x-original-uri" || n == "x-forwarded-uri" {
				t.Errorf("%s: upstream got %s: %q", what, k, v)
			}
		}
	}
	check("without a session", send(http.DefaultClient))
	c, resp := h.login(t)
	h.accepted(t, resp)
	check("with a session", send(c))
}

// TestReadOnlyEndpointsRefuseOtherMethods: the key set and whoami are
// read-only; another method gets 405 with Allow, as every other k1sso
// endpoint answers a method it does not serve.
func TestReadOnlyEndpointsRefuseOtherMethods(t *testing.T) {
	h := newHostile(t)
	c, resp := h.login(t)
	h.accepted(t, resp)
	for _, ep := range []string{"jwks.json", "whoami"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, "PATCH", "FOO"} {
			req, _ := http.NewRequest(m, h.px.URL+"/.k1sso/"+ep, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s /.k1sso/%s: %d, Allow %q; want 405 with Allow: GET, HEAD", m, ep, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(m, h.px.URL+"/.k1sso/"+ep, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s /.k1sso/%s: %d, want 200", m, ep, resp.StatusCode)
			}
		}
	}
}

// TestHostileOPHugeAnswers: K1's answers are read up to a bound. A userinfo
// answer of 8 MiB (the ID token without email, so userinfo is read) refuses
// the login instead of being read whole, and so does a discovery document
// of that size (read at start and on refresh): no OP answer makes the proxy
// buffer without limit.
func TestHostileOPHugeAnswers(t *testing.T) {
	pad := strings.Repeat("a", 8<<20)
	h := newHostile(t)
	h.op.Set(hostileop.Behavior{Claims: del("email", "email_verified"), UserInfo: set("pad", pad)})
	c, resp := h.login(t)
	h.refused(t, c, resp, http.StatusBadRequest)

	op := hostileop.Start(t)
	op.SetDiscovery(func(d map[string]any) { d["pad"] = pad })
	h2 := startHostile(t, op, op.URL)
	_, resp = h2.login(t)
	if b := body(t, resp); resp.StatusCode < 500 || !strings.Contains(b, "KaseyaOne") {
		t.Errorf("login with an 8 MiB discovery document: %d %.200s; want a 5xx page saying KaseyaOne cannot be used", resp.StatusCode, b)
	}
}
