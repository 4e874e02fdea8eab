package caddymodule_test

import (
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

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
