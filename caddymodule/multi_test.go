package caddymodule_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// refused reports whether the proxy at base turns the session cookie away
// (to the login page) instead of forwarding it with identity.
func refused(t *testing.T, base, cookie string) bool {
	t.Helper()
	resp := withCookie(t, base, "/x", cookie)
	if resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == "/login" {
		resp.Body.Close()
		return true
	}
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("at %s the session is neither refused nor bob's: %d %v", base, resp.StatusCode, s.Header)
	}
	return false
}

// waitRefused polls until base refuses the cookie (at most limit) and
// returns how long that took.
func waitRefused(t *testing.T, base, cookie string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for i := 0; i < 2000; i++ {
		if refused(t, base, cookie) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still accepts the session %s after the logout", base, limit)
	return 0
}

// twoInstances runs k1dev and two Caddy processes A and B with the same
// options, and logs bob in through B: K1 then sends its back-channel
// logout to B, while the browser's cookie works at both.
func twoInstances(t *testing.T, storage string, options ...string) (k1 *k1devtest.Instance, a, b *testenv.Process, cookie string) {
	t.Helper()
	k1 = k1devtest.Start(t, nil)
	up := testenv.NewUpstream(t)
	users := testenv.DemoUsers(t)
	site := func() testenv.Site {
		return testenv.Site{K1: k1.URL, Upstream: up.URL, Users: users, Options: options, Storage: storage}
	}
	a = testenv.StartProcess(t, site())
	b = testenv.StartProcess(t, site())
	started := time.Now()
	c := k1devtest.NewClient()
	if _, err := k1.Login(c, b.URL+"/.k1sso/login?rd=/x", "bob", "Acme MSP", "bob-pass"); err != nil {
		t.Fatal(err)
	}
	cookie = cookieOf(c, b.URL, "k1sso")
	if cookie == "" {
		t.Fatal("no session cookie after the login at B")
	}
	if refused(t, a.URL, cookie) || refused(t, b.URL, cookie) {
		t.Fatal("the fresh session is refused")
	}
	// Past the store grace (5 s) a healthy store keeps the instances in
	// sync (redis: pings on the subscription; caddy: polls), so sessions
	// still work.
	time.Sleep(time.Until(started.Add(6 * time.Second)))
	if refused(t, a.URL, cookie) || refused(t, b.URL, cookie) {
		t.Fatal("the session is refused after the store grace with a healthy store")
	}
	return k1, a, b, cookie
}

func TestTwoInstancesOnRedis(t *testing.T) {
	rd := testenv.StartRedis(t)
	k1, a, b, cookie := twoInstances(t, "", "store redis "+rd.URL)

	k1.Server.EndSessions("bob") // returns once B has answered the logout token
	took := waitRefused(t, a.URL, cookie, 3*time.Second)
	t.Logf("instance A refused the session %s after the back-channel logout at B", took)
	if took >= time.Second {
		t.Fatalf("A refused the session only after %s; want < 1s", took)
	}
	if !refused(t, b.URL, cookie) {
		t.Fatal("B accepts the session it revoked")
	}

	// A restart keeps the revocation: it is loaded from Redis.
	a.Stop()
	a.Start()
	if !refused(t, a.URL, cookie) {
		t.Fatal("after a restart, A accepts a revoked session")
	}
}

// caddyStoreBound is the documented bound of the caddy store: one poll of
// the storage folder (caddystore.PollInterval, 1 s) plus the time of one read.
const caddyStoreBound = 2 * time.Second

func TestTwoInstancesOnCaddyStorage(t *testing.T) {
	storage := t.TempDir()
	k1, a, b, cookie := twoInstances(t, storage, "store caddy")

	k1.Server.EndSessions("bob")
	took := waitRefused(t, a.URL, cookie, 5*time.Second)
	t.Logf("instance A refused the session %s after the back-channel logout at B (shared storage folder)", took)
	if took >= caddyStoreBound {
		t.Fatalf("A refused the session only after %s; want < %s", took, caddyStoreBound)
	}
	if !refused(t, b.URL, cookie) {
		t.Fatal("B accepts the session it revoked")
	}
	a.Stop()
	b.Stop()
	a.Start()
	if !refused(t, a.URL, cookie) {
		t.Fatal("after a restart, A accepts a revoked session")
	}
}
