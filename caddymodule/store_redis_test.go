package caddymodule_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// loginBob signs bob in at base with a fresh browser and returns his
// session cookie, or "" when the login did not end at the upstream with a
// session.
func loginBob(t *testing.T, k1 *k1devtest.Instance, base string) string {
	t.Helper()
	c := k1devtest.NewClient()
	resp, err := k1.Login(c, base+"/.k1sso/login?rd=/x", "bob", "Acme MSP", "bob-pass")
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return cookieOf(c, base, "k1sso")
}

// globalLogout ends the session of cookie through BMS's logout path at
// base.
func globalLogout(t *testing.T, base, cookie string) {
	t.Helper()
	resp := withCookie(t, base, "/logout", cookie)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("logout at %s: %d", base, resp.StatusCode)
	}
}

// revokedKeys counts the revocation keys on one redis server.
func revokedKeys(t *testing.T, addr string) int {
	t.Helper()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	keys, err := rc.Keys(context.Background(), "k1sso:*revoked:*").Result()
	if err != nil {
		t.Fatalf("listing keys on %s: %v", addr, err)
	}
	return len(keys)
}

// TestRedisCluster runs two instances on a three-master Redis Cluster: a
// revocation at one holds at the other within 1 s, logins work at both,
// and a restarted instance loads the revocations from every master.
func TestRedisCluster(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	k1, a, b, cookie := twoInstances(t, "", "store redis "+cl.URL, "logout_path /logout")

	k1.Server.EndSessions("bob")
	took := waitRefused(t, a.URL, cookie, 3*time.Second)
	t.Logf("on a cluster, A refused the session %s after the back-channel logout at B", took)
	if took >= time.Second {
		t.Fatalf("A refused the session only after %s; want < 1s", took)
	}

	// Global logouts spread revocation keys over the masters.
	var revoked []string
	for i := 0; i < 6; i++ {
		at := []string{a.URL, b.URL}[i%2]
		c := loginBob(t, k1, at)
		if c == "" {
			t.Fatalf("login %d at %s failed on the cluster", i, at)
		}
		globalLogout(t, at, c)
		revoked = append(revoked, c)
	}
	spread := 0
	for _, n := range cl.Nodes {
		if revokedKeys(t, n.Addr) > 0 {
			spread++
		}
	}
	t.Logf("revocation keys are on %d of 3 masters", spread)
	if spread < 2 {
		t.Fatal("the revocation keys are all on one master: the test does not cover a scan of every master")
	}
	a.Stop()
	a.Start()
	for _, c := range append(revoked, cookie) {
		if !refused(t, a.URL, c) {
			t.Fatal("after a restart on the cluster, A accepts a revoked session")
		}
	}
}

// Sentinel timing of TestRedisSentinelFailover: the sentinels call the
// master down after sentinelDownAfter, and the failover then takes about
// one election (well under a second on one host).
const (
	sentinelDownAfter       = 500 * time.Millisecond
	sentinelFailoverTimeout = 2 * time.Second
)

// TestRedisSentinelFailover stops the master of a Sentinel setup while two
// instances serve requests: the replica is promoted, no revocation made
// before or during the failover is lost, logins and sessions work again
// within the store grace, and both instances use the promoted master.
func TestRedisSentinelFailover(t *testing.T) {
	rs := testenv.StartRedisSentinel(t, sentinelDownAfter, sentinelFailoverTimeout)
	k1, a, b, live := twoInstances(t, "", "store redis "+rs.URL, "logout_path /logout")
	bases := []string{a.URL, b.URL}

	var before, during []string
	for i := 0; i < 4; i++ {
		c := loginBob(t, k1, bases[i%2])
		if c == "" {
			t.Fatalf("login %d failed on sentinel", i)
		}
		before = append(before, c)
	}
	during = before[2:]
	before = before[:2]
	globalLogout(t, a.URL, before[0])
	globalLogout(t, b.URL, before[1])
	// A revocation is on the replica by the time the logout answers.
	if n := revokedKeys(t, rs.Replica.Addr); n < 2 {
		t.Fatalf("right after two logouts the replica has %d revocation keys", n)
	}

	// Load: the live session at both instances, until the end of the
	// failover (bounded in count and time).
	type sample struct {
		at     time.Duration
		status int
	}
	var mu sync.Mutex
	var samples []sample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		nr := testenv.NoRedirect(nil)
		for i := 0; i < 3000 && time.Since(start) < 30*time.Second; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, bases[i%2]+"/x", nil)
			req.AddCookie(&http.Cookie{Name: "k1sso", Value: live})
			resp, err := nr.Do(req)
			st := 0
			if err == nil {
				st = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			samples = append(samples, sample{time.Since(start), st})
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()

	time.Sleep(300 * time.Millisecond)
	oldMaster := rs.Master.Addr
	rs.Master.Stop()
	killed := time.Since(start)
	// Revocations while the master is gone and the sentinels have not yet
	// promoted the replica.
	globalLogout(t, a.URL, during[0])
	globalLogout(t, b.URL, during[1])

	var promoted time.Duration
	for i := 0; i < 300; i++ {
		if m := rs.MasterAddr(); m != "" && m != oldMaster {
			if m != rs.Replica.Addr {
				t.Fatalf("the sentinels promoted %s, not the replica %s", m, rs.Replica.Addr)
			}
			promoted = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if promoted == 0 {
		t.Fatalf("the sentinels did not promote the replica within 15 s; the first said:\n%s", rs.Sentinels[0].Output())
	}
	t.Logf("master stopped at %s, replica promoted %s later", killed, promoted-killed)

	// Logins work again at both instances.
	for _, base := range bases {
		var ok bool
		for i := 0; i < 40 && !ok; i++ {
			if c := loginBob(t, k1, base); c != "" {
				ok = true
				t.Logf("a login at %s worked %s after the master stopped", base, time.Since(start)-killed)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			t.Fatalf("no login at %s after the failover", base)
		}
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// The live session works again at the end of the load, after at most
	// the store grace without identity.
	var worst, gapStart time.Duration
	refusedSince := time.Duration(-1)
	for _, s := range samples {
		if s.status != http.StatusOK {
			if refusedSince < 0 {
				refusedSince, gapStart = s.at, s.at
			}
			continue
		}
		if refusedSince >= 0 && s.at-gapStart > worst {
			worst = s.at - gapStart
		}
		refusedSince = -1
	}
	if refusedSince >= 0 {
		t.Fatalf("the live session is still refused at the end of the load (since %s)", refusedSince)
	}
	t.Logf("%d requests under load; the longest stretch without identity was %s", len(samples), worst)
	// Sessions keep their identity for the 5 s store grace after the
	// master stops, and get it back within a moment of the promotion: a
	// loaded machine may take longer to promote (sentinels are processes
	// too), which only the part of the outage beyond the grace may cost.
	limit := max(0, promoted-killed-5*time.Second) + 2*time.Second
	if worst > limit {
		t.Fatalf("sessions were without identity for %s; want at most %s (outage %s less the 5 s store grace, plus 2 s)", worst, limit, promoted-killed)
	}

	// No revocation lost: those from before and during the failover hold
	// at both instances (the ones made during it within the revoker's
	// one-second retry), and the promoted master has every key.
	for _, c := range append(before, during...) {
		for _, base := range bases {
			waitRefused(t, base, c, 5*time.Second)
		}
	}
	if n := revokedKeys(t, rs.Replica.Addr); n < 4 {
		t.Fatalf("the promoted master holds %d revocation keys; want the 4 made around the failover (and bob's back-channel one if any)", n)
	}
	// Both instances converged on the promoted master: a revocation at one
	// reaches the other at once, through its pub/sub.
	for i, base := range bases {
		c := loginBob(t, k1, base)
		if c == "" {
			t.Fatalf("login at %s after the failover failed", base)
		}
		t0 := time.Now()
		globalLogout(t, base, c)
		t.Logf("a logout at %s after the failover (no replica left to wait for) took %s", base, time.Since(t0))
		if took := waitRefused(t, bases[1-i], c, 3*time.Second); took >= time.Second {
			t.Fatalf("after the failover a revocation at %s held at the other instance after %s; want < 1s", base, took)
		}
	}
	a.Stop()
	a.Start()
	for _, c := range append(before, during...) {
		if !refused(t, a.URL, c) {
			t.Fatal("after a restart on the promoted master, A accepts a revoked session")
		}
	}
}
