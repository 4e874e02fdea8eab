package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCallbackErrorDescriptionNeedsPendingLogin: K1's error_description
// is text from the query string, so anyone can link to the callback with a
// sentence of their own. It is shown only when the callback's state is a
// login this browser started; otherwise the page is generic.
func TestCallbackErrorDescriptionNeedsPendingLogin(t *testing.T) {
	h := newHostile(t)
	const desc = "Your BMS licence expired. Call 555-0100"
	q := "error=access_denied&error_description=" + url.QueryEscape(desc)
	for _, tc := range []struct{ what, query, cookie string }{
		{"no state, no cookie", q, ""},
		{"a made-up state", q + "&state=0123456789abcdefghijklmnop", ""},
		{"a state with another cookie", q + "&state=0123456789abcdefghijklmnop", "k1sso-login-0123456789ab=forged"},
	} {
		resp := getWithCookie(t, h.px.URL+"/.k1sso/callback?"+tc.query, tc.cookie)
		b := body(t, resp)
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(b, "<html") {
			t.Errorf("%s: %d, want a 4xx page", tc.what, resp.StatusCode)
		}
		if strings.Contains(b, "555-0100") || strings.Contains(b, "licence") {
			t.Errorf("%s: the page shows the query's error_description", tc.what)
		}
		if strings.Contains(b, "denied") {
			t.Errorf("%s: the page speaks for K1 without a pending login", tc.what)
		}
	}

	// A login this browser started: K1's answer is shown as K1 gave it.
	resp := getWithCookie(t, h.px.URL+"/.k1sso/login?rd=/dashboard", "")
	resp.Body.Close()
	var login *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "k1sso-login-") {
			login = c
		}
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if login == nil || err != nil {
		t.Fatalf("login start: %d, no login cookie or Location", resp.StatusCode)
	}
	state := loc.Query().Get("state")
	resp = getWithCookie(t, h.px.URL+"/.k1sso/callback?"+q+"&state="+url.QueryEscape(state), login.Name+"="+login.Value)
	b := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "KaseyaOne denied access.") || !strings.Contains(b, "555-0100") {
		t.Errorf("pending login: %d, want 403 with K1's description: %.400s", resp.StatusCode, b)
	}
}
