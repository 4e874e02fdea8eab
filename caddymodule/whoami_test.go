package caddymodule_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
)

// TestWhoamiEndsWithSessionLifetime: whoami answers on the same clock as
// every other request, so a session the proxy no longer forwards with
// identity is no session for whoami either.
func TestWhoamiEndsWithSessionLifetime(t *testing.T) {
	w := newWorld(t, "session_lifetime 1m")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	cookie := cookieOf(c, w.px.URL, "k1sso")
	if resp := withCookie(t, w.px.URL, "/.k1sso/whoami", cookie); resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("whoami right after the login: %d", resp.StatusCode)
	}
	caddymodule.ShiftClock(t, 65*time.Second)
	if u := userSeen(t, w.px.URL, cookie); u != "" {
		t.Fatalf("65 s after login, with session_lifetime 1m, the session still works as %q", u)
	}
	resp := withCookie(t, w.px.URL, "/.k1sso/whoami", cookie)
	b := body(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami of a session past its lifetime: %d %s, want 401", resp.StatusCode, b)
	}
}
