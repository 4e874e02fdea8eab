package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

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
