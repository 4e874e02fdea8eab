package caddymodule_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

func TestBackchannelLogoutFromK1(t *testing.T) {
	w := newWorld(t, "upstream_cookies BMSSESSION")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	old := cookieOf(c, w.px.URL, "k1sso")
	if s := testenv.DecodeSeen(t, withCookie(t, w.px.URL, "/x", old)); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("no identity before the logout")
	}
	// A logout at K1: k1dev posts a logout token to the proxy that the
	// login's redirect URI named, and waits for the answer.
	w.k1.Server.EndSessions("bob")

	w.up.Reset()
	req, _ := http.NewRequest(http.MethodGet, w.px.URL+"/x", nil)
	req.AddCookie(&http.Cookie{Name: "k1sso", Value: old})
	req.AddCookie(&http.Cookie{Name: "BMSSESSION", Value: "native"})
	resp, err := testenv.NoRedirect(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" || !expired(resp, "k1sso") || !expired(resp, "BMSSESSION") {
		t.Fatalf("session after back-channel logout: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), resp.Header["Set-Cookie"])
	}
	// An API call gets 401; the login page itself is forwarded without
	// identity and without the cleared cookies.
	req, _ = http.NewRequest(http.MethodPost, w.px.URL+"/api/x", strings.NewReader("{}"))
	req.AddCookie(&http.Cookie{Name: "k1sso", Value: old})
	resp, _ = testenv.NoRedirect(nil).Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked session POST: %d, want 401", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, w.px.URL+"/login", nil)
	req.AddCookie(&http.Cookie{Name: "k1sso", Value: old})
	req.AddCookie(&http.Cookie{Name: "BMSSESSION", Value: "native"})
	resp, _ = testenv.NoRedirect(nil).Do(req)
	s := testenv.DecodeSeen(t, resp)
	if s.Path != "/login" || s.Header.Get("X-BMS-User") != "" || strings.Contains(s.Header.Get("Cookie"), "BMSSESSION") {
		t.Fatalf("login page with a revoked session: %s user %q cookie %q", s.Path, s.Header.Get("X-BMS-User"), s.Header.Get("Cookie"))
	}
	for _, s := range w.up.Requests() {
		if s.Header.Get("X-BMS-User") != "" {
			t.Fatalf("a revoked session reached BMS with identity at %s", s.Path)
		}
	}
}

func TestBackchannelLogoutTokenChecks(t *testing.T) {
	op := newFakeOP(t)
	up := testenv.NewUpstream(t)
	px := testenv.StartCaddy(t, testenv.Site{K1: op.URL, Upstream: up.URL, Users: testenv.DemoUsers(t)})
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}

	valid := op.sign(t, op.claims(), nil)
	if status, hdr, _ := postLogout(t, px.URL, valid); status != http.StatusOK || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("valid logout token: %d, Cache-Control %q", status, hdr.Get("Cache-Control"))
	}
	// Ory Hydra v2.3.0 sends no exp (written to Back-Channel Logout 1.0
	// before its errata made exp required): a recent iat is enough.
	noExp := op.claims()
	delete(noExp, "exp")
	if status, _, body := postLogout(t, px.URL, op.sign(t, noExp, nil)); status != http.StatusOK {
		t.Fatalf("logout token without exp, iat now: %d %v, want 200", status, body)
	}
	cases := []struct {
		name  string
		edit  func(map[string]any)
		key   *rsa.PrivateKey
		token string
	}{
		{name: "bad signature", key: other},
		{name: "wrong iss", edit: func(c map[string]any) { c["iss"] = "https://evil.example" }},
		{name: "wrong aud", edit: func(c map[string]any) { c["aud"] = "another-client" }},
		{name: "missing events", edit: func(c map[string]any) { delete(c, "events") }},
		{name: "wrong event", edit: func(c map[string]any) { c["events"] = map[string]any{"http://example.com/other": map[string]any{}} }},
		{name: "event name in other case", edit: func(c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logoUt": map[string]any{}}
		}},
		{name: "Events capitalised", edit: func(c map[string]any) { c["Events"] = c["events"]; delete(c, "events") }},
		{name: "event null", edit: func(c map[string]any) {
			c["events"] = map[string]any{"http://schemas.openid.net/event/backchannel-logout": nil}
		}},
		{name: "SID for sid", edit: func(c map[string]any) { c["SID"] = c["sid"]; delete(c, "sid"); delete(c, "sub") }},
		{name: "nonce present", edit: func(c map[string]any) { c["nonce"] = "n-0S6_WzA2Mj" }},
		{name: "neither sub nor sid", edit: func(c map[string]any) { delete(c, "sub"); delete(c, "sid") }},
		{name: "iat far future", edit: func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }},
		{name: "iat missing", edit: func(c map[string]any) { delete(c, "iat") }},
		{name: "expired", edit: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }},
		{name: "no exp, iat older than the window", edit: func(c map[string]any) {
			delete(c, "exp")
			c["iat"] = time.Now().Add(-10 * time.Minute).Unix() // window 2m + clock skew 2m
		}},
		{name: "EXP for exp", edit: func(c map[string]any) { c["EXP"] = c["exp"]; delete(c, "exp") }},
		{name: "exp not a number", edit: func(c map[string]any) { c["exp"] = "tomorrow" }},
		{name: "nbf in the future", edit: func(c map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }},
		{name: "jti missing", edit: func(c map[string]any) { delete(c, "jti") }},
		{name: "replayed jti", token: valid},
		{name: "not a JWT", token: "not.a.jwt"},
	}
	for _, tc := range cases {
		tok := tc.token
		if tok == "" {
			c := op.claims()
			if tc.edit != nil {
				tc.edit(c)
			}
			tok = op.sign(t, c, tc.key)
		}
		status, hdr, body := postLogout(t, px.URL, tok)
		if status != http.StatusBadRequest || body["error"] != "invalid_request" || body["error_description"] == "" || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %v (Cache-Control %q), want 400 invalid_request", tc.name, status, body, hdr.Get("Cache-Control"))
		}
	}
	// An OP without end_session_endpoint: logout goes straight to the
	// login page.
	resp, err := testenv.NoRedirect(nil).Get(px.URL + "/.k1sso/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
		t.Errorf("logout without end_session_endpoint: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// No token, and GET.
	if status, _, body := postLogout(t, px.URL, ""); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("no logout_token: %d %v", status, body)
	}
	resp, err = http.Get(px.URL + "/.k1sso/backchannel-logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

func TestFrontchannelLogout(t *testing.T) {
	w := newWorld(t, "logout_path /logout")
	// Two proxy sessions of one K1 session: the second login finds K1's
	// session and asks for nothing.
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	first := cookieOf(c, w.px.URL, "k1sso")
	u, _ := url.Parse(w.px.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "k1sso", Value: "", Path: "/", MaxAge: -1}})
	resp := get(t, c, w.px.URL+"/.k1sso/login?rd=/y")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("second login: %v", s.Header)
	}
	// The sid, from the ID token the proxy hands K1 at logout of the second.
	resp = get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/logout")
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	sid, _ := jwtClaims(t, loc.Query().Get("id_token_hint"))["sid"].(string)
	if sid == "" {
		t.Fatal("no sid in the ID token")
	}
	if s := testenv.DecodeSeen(t, withCookie(t, w.px.URL, "/x", first)); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("the first session ended with the second")
	}

	for _, bad := range []url.Values{
		{"iss": {"https://evil.example"}, "sid": {sid}},
		{"sid": {sid}},
		{"iss": {w.k1.URL}},
	} {
		resp = get(t, http.DefaultClient, w.px.URL+"/.k1sso/frontchannel-logout?"+bad.Encode())
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("front-channel %v: %d, want 400", bad, resp.StatusCode)
		}
	}
	if s := testenv.DecodeSeen(t, withCookie(t, w.px.URL, "/x", first)); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("a refused front-channel logout ended the session")
	}
	req, _ := http.NewRequest(http.MethodGet, w.px.URL+"/.k1sso/frontchannel-logout?"+url.Values{"iss": {w.k1.URL}, "sid": {sid}}.Encode(), nil)
	req.AddCookie(&http.Cookie{Name: "k1sso", Value: first})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(b, "Signed out") || !expired(resp, "k1sso") {
		t.Fatalf("front-channel logout: %d %q %v %.200s", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header["Set-Cookie"], b)
	}
	resp = withCookie(t, w.px.URL, "/x", first)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
		t.Fatalf("session of the sid after front-channel logout: %d", resp.StatusCode)
	}
}
