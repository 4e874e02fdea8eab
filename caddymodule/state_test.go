package caddymodule_test

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// storedUnder counts the files k1sso keeps in Caddy's storage folder that
// lie in a folder named dir ("" counts every file).
func storedUnder(t *testing.T, storage, dir string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir(filepath.Join(storage, "k1sso"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (dir == "" || strings.Contains(filepath.ToSlash(p), "/"+dir+"/")) {
			n++
		}
		return nil
	})
	return n
}

// Anonymous front-channel logouts of sids this deployment never issued
// store nothing, in Caddy's storage and in Redis.
func TestFrontchannelUnknownSidsStoreNothing(t *testing.T) {
	junk := func(t *testing.T, w *world) {
		t.Helper()
		for i := 0; i < 100; i++ {
			q := url.Values{"iss": {w.k1.URL}, "sid": {fmt.Sprintf("junk-%d", i)}}
			resp := get(t, http.DefaultClient, w.px.URL+"/.k1sso/frontchannel-logout?"+q.Encode())
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Fatalf("front-channel logout of an unknown sid: %d", resp.StatusCode)
			}
		}
	}
	t.Run("caddy", func(t *testing.T) {
		w := newWorld(t)
		c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
		cookie := cookieOf(c, w.px.URL, "k1sso")
		before := storedUnder(t, w.px.Storage, "")
		junk(t, w)
		if n := storedUnder(t, w.px.Storage, "revoked"); n != 0 {
			t.Errorf("%d revocations stored for 100 unknown sids", n)
		}
		if after := storedUnder(t, w.px.Storage, ""); after != before {
			t.Errorf("the storage went from %d to %d files", before, after)
		}
		if refused(t, w.px.URL, cookie) {
			t.Error("bob's session ended by logouts of other sids")
		}
	})
	t.Run("redis", func(t *testing.T) {
		rd := testenv.StartRedis(t)
		w := newWorld(t, "store redis "+rd.URL)
		w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
		before, _ := rd.Do("DBSIZE")
		junk(t, w)
		if after, _ := rd.Do("DBSIZE"); after != before {
			t.Errorf("Redis went from %s to %s keys", before, after)
		}
	})
}

// A signed back-channel logout of a sid or sub this deployment never issued
// is answered, and stores no revocation.
func TestBackchannelUnknownSessionStoresNoRevocation(t *testing.T) {
	op := newFakeOP(t)
	up := testenv.NewUpstream(t)
	px := testenv.StartCaddy(t, testenv.Site{K1: op.URL, Upstream: up.URL, Users: testenv.DemoUsers(t)})
	for i := 0; i < 10; i++ {
		c := op.claims()
		if i%2 == 1 {
			delete(c, "sid")
			c["sub"] = fmt.Sprintf("k1|nobody-%d", i)
		}
		if status, _, body := postLogout(t, px.URL, op.sign(t, c, nil)); status != http.StatusOK {
			t.Fatalf("logout token for an unknown session: %d %v", status, body)
		}
	}
	if n := storedUnder(t, px.Storage, "revoked"); n != 0 {
		t.Errorf("%d revocations stored for sessions never issued", n)
	}
}

// Unknown tenants are refused before any lookup: the integration cache
// does not grow, and the login page treats them as no tenant.
func TestUnknownTenantsAreNotLookedUp(t *testing.T) {
	w := &world{k1: k1devtest.Start(t, nil), up: testenv.NewUpstream(t)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: loginPageUpstream(t), Users: testenv.DemoUsers(t)}
	w.px = testenv.StartCaddy(t, w.s)
	nr := testenv.NoRedirect(nil)
	base := caddymodule.IntegrationCacheLen("nosuch-")
	for i := 0; i < 500; i++ {
		resp := get(t, nr, fmt.Sprintf("%s/.k1sso/login?tenant=nosuch-%d", w.px.URL, i))
		resp.Body.Close()
		if resp.StatusCode/100 != 4 {
			t.Fatalf("login into an unknown tenant: %d %q, want a 4xx", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = get(t, nr, fmt.Sprintf("%s/login?tenant=nosuch-%d", w.px.URL, i))
		resp.Body.Close()
	}
	if n := caddymodule.IntegrationCacheLen("nosuch-") - base; n > 0 {
		t.Errorf("1000 requests for unknown tenants added %d integration cache entries", n)
	}
	for _, tn := range []string{"..", ".", "acme/../acme"} {
		resp := get(t, nr, w.px.URL+"/.k1sso/login?tenant="+url.QueryEscape(tn))
		b := body(t, resp)
		if resp.StatusCode/100 != 4 {
			t.Errorf("tenant=%s: %d %.100s, want a 4xx", tn, resp.StatusCode, b)
		}
	}
	// A known tenant still works.
	resp := get(t, nr, w.px.URL+"/.k1sso/login?tenant=acme")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL) {
		t.Errorf("login into acme: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Used login states expire out of Caddy's storage: an attacker's two
// requests per state leave nothing once the state's time is over. The
// store sweeps every minute of its clock, so the two hours ShiftClock
// moves it bring a sweep at the next poll.
func TestCaddyStoreSweepsUsedStates(t *testing.T) {
	w := newWorld(t)
	for i := 0; i < 20; i++ {
		c := testenv.NoRedirect(newJar())
		resp := get(t, c, w.px.URL+"/.k1sso/login?rd=/x")
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Query().Get("state") == "" {
			t.Fatalf("login start: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = get(t, c, w.px.URL+"/.k1sso/callback?"+url.Values{"state": {loc.Query().Get("state")}, "code": {"junk"}}.Encode())
		resp.Body.Close()
	}
	if n := storedUnder(t, w.px.Storage, "state"); n < 20 {
		t.Fatalf("%d used states stored after 20 callbacks, want 20", n)
	}
	caddymodule.ShiftClock(t, 2*time.Hour)
	start := time.Now()
	n := 0
	for time.Since(start) < 5*time.Second {
		if n = storedUnder(t, w.px.Storage, "state"); n == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n != 0 {
		t.Fatalf("%d expired used states still stored after %s", n, time.Since(start).Round(time.Millisecond))
	}
}

// Every key k1sso writes to Redis expires, except the assertion key and
// the integration switches (one per tenant of the users file).
func TestRedisKeysExpire(t *testing.T) {
	rd := testenv.StartRedis(t)
	w := newWorld(t, "store redis "+rd.URL)
	w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	w.k1.Server.EndSessions("bob")
	keys, err := rd.Do("KEYS", "*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range strings.Fields(keys) {
		if strings.Contains(k, "assertion/") || strings.Contains(k, "integration/") {
			continue
		}
		n++
		if ttl, _ := rd.Do("TTL", k); ttl == "-1" {
			t.Errorf("key %s never expires", k)
		}
	}
	if n == 0 {
		t.Fatalf("no expiring keys after a login and a logout: %q", keys)
	}
}

// reloadSamePort loads the world's site again on its port and storage (K1
// sends back-channel logouts to the port of the login), dropping the
// client connections to the old server.
func (w *world) reloadSamePort(t *testing.T) {
	t.Helper()
	w.s.Port, w.s.Storage = w.px.Port, w.px.Storage
	w.reload(t)
	// The old server may still take and drop a connection on the shared
	// listener for a moment: wait until requests keep working.
	ok := 0
	for start := time.Now(); ok < 5 && time.Since(start) < 5*time.Second; {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		resp, err := http.Get(w.px.URL + "/.k1sso/jwks.json")
		if err != nil {
			ok = 0
			time.Sleep(20 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		ok++
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// Shortening session_lifetime does not bring revoked sessions back: a
// session ends at issued + the configured lifetime, and a revocation lasts
// as long as the longest session issued for it.
func TestShorterLifetimeKeepsRevocations(t *testing.T) {
	w, cookie := sessionThenShorterLifetime(t)
	w.k1.Server.EndSessions("bob")
	if !refused(t, w.px.URL, cookie) {
		t.Fatal("the session works after the back-channel logout")
	}
	caddymodule.ShiftClock(t, 125*time.Second)
	time.Sleep(1500 * time.Millisecond) // a sweep of the revocations
	// The session has ended (older than the lifetime): no identity.
	if u := userSeen(t, w.px.URL, cookie); u != "" {
		t.Fatalf("125 s after the logout, with session_lifetime 1m, the revoked session works again as %q", u)
	}
	// An instance that still has the long lifetime (a rolling change).
	w.s.Options = []string{"session_lifetime 2h"}
	w.reloadSamePort(t)
	time.Sleep(1500 * time.Millisecond)
	if !refused(t, w.px.URL, cookie) {
		t.Fatal("with session_lifetime 2h again, the revoked session works 125 s after its logout")
	}
}

// TestShorterLifetimeEndsOlderSessions: a session also ends at its issue
// time + the lifetime configured now, not only at the expiry its cookie
// carries, so shortening session_lifetime ends older sessions without a
// logout.
func TestShorterLifetimeEndsOlderSessions(t *testing.T) {
	w, cookie := sessionThenShorterLifetime(t)
	caddymodule.ShiftClock(t, 65*time.Second)
	if u := userSeen(t, w.px.URL, cookie); u != "" {
		t.Fatalf("65 s after login, with session_lifetime 1m, the 2h session still works as %q", u)
	}
}

// sessionThenShorterLifetime logs bob in under session_lifetime 2h, then
// reloads with 1m; his session still works right after the reload.
func sessionThenShorterLifetime(t *testing.T) (*world, string) {
	t.Helper()
	w := newWorld(t, "session_lifetime 2h")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	cookie := cookieOf(c, w.px.URL, "k1sso")
	w.s.Options = []string{"session_lifetime 1m"}
	w.reloadSamePort(t)
	if refused(t, w.px.URL, cookie) {
		t.Fatal("the session is refused right after the reload with session_lifetime 1m")
	}
	return w, cookie
}

// Two deployments (other issuer) sharing Caddy's storage have their own
// assertion keys; every instance of one deployment uses the same.
func TestCaddyStoreNamespacedPerDeployment(t *testing.T) {
	storage := t.TempDir()
	users := testenv.DemoUsers(t)
	up := testenv.NewUpstream(t)
	k1a, k1b := k1devtest.Start(t, nil), k1devtest.Start(t, nil)
	jwks := func(k1 string) string {
		px := testenv.StartCaddy(t, testenv.Site{K1: k1, Upstream: up.URL, Users: users, Storage: storage})
		return body(t, get(t, http.DefaultClient, px.URL+"/.k1sso/jwks.json"))
	}
	a := jwks(k1a.URL)
	b := jwks(k1b.URL)
	if a == b {
		t.Error("two deployments on one storage publish the same assertion key")
	}
	if again := jwks(k1a.URL); again != a {
		t.Error("a restart of a deployment changed its assertion key")
	}
}

// A session minted on an instance whose clock is ahead (within the allowed
// skew) is still ended by a logout of its user at an instance whose clock
// is right: sub revocations are measured on K1's clock.
func TestSubRevocationAcrossClockSkew(t *testing.T) {
	h := newHostile(t)
	caddymodule.ShiftClock(t, 50*time.Second) // the fast instance
	c, resp := h.login(t)
	h.accepted(t, resp)
	cookie := h.sessionCookie(c)
	caddymodule.ShiftClock(t, 0) // the instance with the right time
	if status, _, body := postLogout(t, h.px.URL, h.op.SignLogout("k1|bob", nil)); status != http.StatusOK {
		t.Fatalf("logout token: %d %v", status, body)
	}
	resp = withCookie(t, h.px.URL, "/dashboard", cookie)
	if resp.StatusCode == http.StatusOK {
		if u := testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User"); u != "" {
			t.Fatalf("a session minted 50 s ahead escaped the logout of its user: forwarded as %q", u)
		}
		return
	}
	resp.Body.Close()
}

// An integration switch stored before keys were namespaced is still read.
func TestLegacyIntegrationSwitchIsRead(t *testing.T) {
	storage := t.TempDir()
	dir := filepath.Join(storage, "k1sso", "integration")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The caddy store's format: 8 bytes of expiry (0: never), then JSON.
	if err := os.WriteFile(filepath.Join(dir, "acme"), append(make([]byte, 8), `{"enabled":false}`...), 0o600); err != nil {
		t.Fatal(err)
	}
	k1 := k1devtest.Start(t, nil)
	px := testenv.StartCaddy(t, testenv.Site{K1: k1.URL, Upstream: testenv.NewUpstream(t).URL, Users: testenv.DemoUsers(t), Storage: storage})
	if resp := spLogin(t, px.URL, "acme"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("SP login into acme, switched off in the old layout: %d, want 403", resp.StatusCode)
	}
}
