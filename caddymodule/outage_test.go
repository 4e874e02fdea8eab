package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// unreachablePage asserts the 503 page that says K1 cannot be reached.
func unreachablePage(t *testing.T, resp *http.Response) {
	t.Helper()
	b := body(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "KaseyaOne is unreachable") {
		t.Fatalf("got %d at %s, want the 503 KaseyaOne-unreachable page: %.300s", resp.StatusCode, resp.Request.URL.Path, b)
	}
}

// TestOutageSlowK1: a K1 that answers slower than the timeout (discovery,
// JWKS or token endpoint) gets a clear 503 page quickly, not a hang.
func TestOutageSlowK1(t *testing.T) {
	caddymodule.SetK1Timeout(t, 300*time.Millisecond)
	slow := []hostileop.Behavior{
		{TokenDelay: 3 * time.Second},
		{JWKSDelay: 3 * time.Second},
		{DiscoveryDelay: 3 * time.Second},
	}
	for i, b := range slow {
		// A fresh OP each time: discovery and keys are fetched anew.
		h := &hostile{op: hostileop.Start(t), up: testenv.NewUpstream(t)}
		h.op.Set(b)
		h.s = testenv.Site{K1: h.op.URL, Upstream: h.up.URL, Users: testenv.DemoUsers(t)}
		h.px = testenv.StartCaddy(t, h.s)
		start := time.Now()
		c, resp := h.login(t)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("case %d: the login took %s with a 300ms K1 timeout", i, d)
		}
		unreachablePage(t, resp)
		if h.sessionCookie(c) != "" {
			t.Errorf("case %d: a session cookie was set", i)
		}
		h.noIdentityUpstream(t)
	}
}

// TestOutageK1DownAtStart: Caddy starts while K1 is unreachable, a user
// who is logged in keeps working, new logins get a 503 page, discovery is
// retried with backoff (not once per login), and when K1 is back logins
// work without a restart.
func TestOutageK1DownAtStart(t *testing.T) {
	caddymodule.SetDiscoveryBackoff(t, 200*time.Millisecond, 400*time.Millisecond)
	h := newHostile(t)
	bob, resp := h.login(t)
	h.accepted(t, resp)

	h.op.SetDown(true)
	// A new cookie secret first gives a fresh pooled state (no discovery)
	// while bob's cookie, under the old secret, stays valid: Caddy
	// "restarts" with K1 down.
	h.s.Secrets = []string{"another-cookie-secret-0123456789abcdef", testenv.CookieSecret}
	h.px = testenv.StartCaddy(t, h.s)
	before := h.op.DiscoveryHits()
	start := time.Now()
	for i := 0; i < 20; i++ {
		if s := testenv.DecodeSeen(t, get(t, bob, h.px.URL+"/dashboard")); s.Header.Get("X-BMS-User") != "bob" {
			t.Fatal("a logged-in user lost the identity while K1 is down")
		}
		_, resp := h.login(t)
		unreachablePage(t, resp)
		time.Sleep(25 * time.Millisecond)
	}
	elapsed := time.Since(start)
	tries := h.op.DiscoveryHits() - before
	// With a 200ms..400ms backoff, elapsed/200ms+2 is the most possible;
	// one try per login would be 20 or more.
	if max := int64(elapsed/(200*time.Millisecond)) + 2; tries > max || tries >= 20 {
		t.Fatalf("%d discovery tries in %s for 20 logins; want at most %d (backoff)", tries, elapsed.Round(time.Millisecond), max)
	}
	if tries == 0 {
		t.Fatal("discovery was not retried while K1 was down")
	}
	h.noIdentityUpstreamExcept(t, "bob")

	h.op.SetDown(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, resp := h.login(t)
		if resp.StatusCode == 200 {
			h.accepted(t, resp)
			return
		}
		unreachablePage(t, resp)
		if time.Now().After(deadline) {
			t.Fatal("login still fails 5s after K1 came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noIdentityUpstreamExcept asserts that only user's requests had an
// identity at the upstream.
func (h *hostile) noIdentityUpstreamExcept(t *testing.T, user string) {
	t.Helper()
	for _, s := range h.up.Requests() {
		if u := s.Header.Get("X-BMS-User"); u != "" && u != user {
			t.Errorf("upstream got %s as %s", s.Path, u)
		}
	}
}
