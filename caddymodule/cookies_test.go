package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// secureExternal is the external URL of the https tests: k1sso's cookies
// are then Secure and __Host- prefixed, though the test talks plain http to
// 127.0.0.1.
const secureExternal = "https://bms.example"

// setCookie returns the value a response sets for a cookie, or "".
func setCookieOf(resp *http.Response, name string) string {
	for _, c := range resp.Cookies() {
		if c.Name == name && c.MaxAge >= 0 {
			return c.Value
		}
	}
	return ""
}

// secureLogin logs bob in through the hostile OP on a site whose
// external_url is https, step by step (a cookie jar would not send Secure
// cookies over http), and returns the pending-login cookie it used and the
// session cookie it got.
func secureLogin(t *testing.T, h *hostile) (loginName, loginValue, sess string) {
	t.Helper()
	resp := getWithCookie(t, h.px.URL+"/.k1sso/login?rd=/dashboard", "")
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "__Host-k1sso-login-") {
			loginName, loginValue = c.Name, c.Value
		}
	}
	if resp.StatusCode != http.StatusFound || loginName == "" {
		t.Fatalf("login start: %d, cookies %v", resp.StatusCode, resp.Header.Values("Set-Cookie"))
	}
	resp = getWithCookie(t, resp.Header.Get("Location"), "")
	resp.Body.Close()
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(cb.String(), secureExternal+"/.k1sso/callback?") {
		t.Fatalf("OP answer: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	callback := h.px.URL + cb.RequestURI()
	resp = getWithCookie(t, callback, loginName+"="+loginValue)
	resp.Body.Close()
	sess = setCookieOf(resp, "__Host-k1sso")
	if resp.StatusCode != http.StatusFound || sess == "" {
		t.Fatalf("callback: %d, no session cookie", resp.StatusCode)
	}
	return loginName, loginValue, sess
}

// unicodeSpaces are spaces strings.TrimSpace removes but a Cookie header's
// grammar does not allow around a name.
var unicodeSpaces = map[string]string{"U+2000": "\u2000", "U+00A0": "\u00a0", "U+3000": "\u3000", "U+0085": "\u0085"}

// TestCookieNameUnicodeSpace: on an https external_url the session cookie
// is __Host-k1sso, which only the origin itself can set. A sibling
// subdomain can set "<unicode space>__Host-k1sso" (no prefix rules apply to
// it): that cookie must not count as the session, nor shadow the real one.
func TestCookieNameUnicodeSpace(t *testing.T) {
	h := newHostile(t, "external_url "+secureExternal)
	_, _, sess := secureLogin(t, h)
	user := func(cookie string) string {
		t.Helper()
		resp := getWithCookie(t, h.px.URL+"/dashboard", cookie)
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			t.Fatalf("Cookie %q: %d", cookie, resp.StatusCode)
		}
		return testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
	}
	if got := user("other=1; __Host-k1sso=" + sess); got != "bob" {
		t.Fatalf("the real __Host- session: X-BMS-User %q, want bob", got)
	}
	for name, sp := range unicodeSpaces {
		if got := user("other=1; " + sp + "__Host-k1sso=" + sess); got != "" {
			t.Errorf("%s before __Host-k1sso: a session as %q", name, got)
		}
		if got := user("other=1; __Host-k1sso" + sp + "=" + sess); got != "" {
			t.Errorf("%s after __Host-k1sso: a session as %q", name, got)
		}
		// A planted look-alike first does not hide the real cookie.
		if got := user(sp + "__Host-k1sso=planted; __Host-k1sso=" + sess); got != "bob" {
			t.Errorf("%s look-alike before the real session: X-BMS-User %q, want bob", name, got)
		}
	}
}

// TestCookieNameUnicodeSpaceLoginState: a pending login's cookie under a
// look-alike name does not finish the login.
func TestCookieNameUnicodeSpaceLoginState(t *testing.T) {
	h := newHostile(t, "external_url "+secureExternal)
	h.op.Set(hostileop.Behavior{})
	for name, sp := range unicodeSpaces {
		resp := getWithCookie(t, h.px.URL+"/.k1sso/login?rd=/dashboard", "")
		resp.Body.Close()
		var ck *http.Cookie
		for _, c := range resp.Cookies() {
			if strings.HasPrefix(c.Name, "__Host-k1sso-login-") {
				ck = c
			}
		}
		if ck == nil {
			t.Fatal("no login cookie")
		}
		resp = getWithCookie(t, resp.Header.Get("Location"), "")
		resp.Body.Close()
		cb, _ := url.Parse(resp.Header.Get("Location"))
		resp = getWithCookie(t, h.px.URL+cb.RequestURI(), "a=1; "+sp+ck.Name+"="+ck.Value)
		b := body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || setCookieOf(resp, "__Host-k1sso") != "" || !strings.Contains(b, "did not start in this browser") {
			t.Errorf("%s before the login cookie: callback %d, session cookie %v", name, resp.StatusCode, setCookieOf(resp, "__Host-k1sso") != "")
		}
	}
}
