package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// A refusal an error route forwards must not carry BMS's own session
// cookies: k1sso expires them for a revoked session and never lets a
// refused request reach BMS with them, so an error route that proxies
// must not either (BMS would answer as the user its cookie names).
func TestHandleErrorsProxyGetsNoUpstreamCookies(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	up, errUp := testenv.NewUpstream(t), testenv.NewUpstream(t)
	w := &world{k1: k1, up: up}
	w.s = testenv.Site{K1: k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t), Options: []string{"enforce", "upstream_cookies BMSSESSION"},
		Extra: "handle_errors {\n\t\treverse_proxy " + strings.TrimPrefix(errUp.URL, "http://") + "\n\t}"}
	w.px = testenv.StartCaddy(t, w.s)
	c, resp := w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	body(t, resp)
	old := cookieOf(c, w.px.URL, "k1sso")
	k1.Server.EndSessions("bob") // back-channel logout: the session is revoked
	up.Reset()

	for _, c := range []struct{ name, method, path string }{
		{"revoked session, api call", http.MethodGet, "/api/x"},
		{"revoked session, POST", http.MethodPost, "/api/x"},
		{"revoked session, bad path", http.MethodGet, "/a//b"},
	} {
		errUp.Reset()
		req, _ := http.NewRequest(c.method, w.px.URL+c.path, nil)
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
		req.AddCookie(&http.Cookie{Name: "k1sso", Value: old})
		req.AddCookie(&http.Cookie{Name: "BMSSESSION", Value: "native"})
		resp, err := testenv.NoRedirect(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		s := testenv.DecodeSeen(t, resp)
		if len(errUp.Requests()) != 1 {
			t.Fatalf("%s: got %d, the error route's upstream saw %d requests", c.name, resp.StatusCode, len(errUp.Requests()))
		}
		for _, line := range s.Header.Values("Cookie") {
			if strings.Contains(line, "BMSSESSION") || strings.Contains(line, "k1sso") {
				t.Fatalf("%s: the error route forwarded a cleared cookie: %.80s", c.name, line)
			}
		}
	}
	for _, s := range up.Requests() {
		t.Fatalf("the site's upstream got %s though every request was refused", s.Path)
	}
}
