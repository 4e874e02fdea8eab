package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// identityAt is the X-BMS-User the upstream saw for a GET of path with c's
// cookies ("" when the request did not reach it with an identity).
func identityAt(t *testing.T, c *http.Client, base, path string) string {
	t.Helper()
	resp := get(t, testenv.NoRedirect(c.Jar), base+path)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return ""
	}
	return testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
}

// TestRecheckDisabledUser: a user disabled at K1 (no logout token reaches
// the proxy) loses the session within the recheck interval; a user still
// enabled keeps it.
func TestRecheckDisabledUser(t *testing.T) {
	w := newWorld(t, "recheck_interval 1s")
	alice, _ := w.loginAs(t, "alice", "/.k1sso/login?rd=/x&tenant=acme")
	bob, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	if identityAt(t, alice, w.px.URL, "/x") != "alice" || identityAt(t, bob, w.px.URL, "/x") != "bob" {
		t.Fatal("no identity after login")
	}
	if err := w.k1.Server.DisableUser("alice"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for identityAt(t, alice, w.px.URL, "/x") == "alice" {
		if time.Since(start) > 4*time.Second {
			t.Fatal("a user disabled at K1 still has the session 4s later with recheck_interval 1s")
		}
		if identityAt(t, bob, w.px.URL, "/x") != "bob" {
			t.Fatal("an enabled user lost the session")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Bob stays through several more intervals (each a refresh grant).
	for range 25 {
		if identityAt(t, bob, w.px.URL, "/x") != "bob" {
			t.Fatal("an enabled user lost the session at a recheck")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cookieOf(alice, w.px.URL, "k1sso") != "" {
		t.Fatal("the revoked session's cookie was not cleared")
	}
}

// downable serves k1dev until it is down; then every connection is closed
// without an answer, as a K1 that cannot be reached.
type downable struct {
	h      http.Handler
	down   atomic.Bool
	tokens atomic.Int64 // requests to the token endpoint
}

func (d *downable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/oauth/token" {
		d.tokens.Add(1)
	}
	if d.down.Load() {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	d.h.ServeHTTP(w, r)
}

// TestRecheckK1Unreachable: while K1 cannot be reached, a session whose
// recheck is due goes on (the metric counts it), and the recheck is retried:
// once K1 is back, a user disabled meanwhile loses the session.
func TestRecheckK1Unreachable(t *testing.T) {
	caddymodule.SetRecheckRetry(t, 500*time.Millisecond)
	k1 := &downable{}
	inst := startK1Behind(t, func(srv http.Handler) http.Handler { k1.h = srv; return k1 })
	u := inst.URL

	w := &world{k1: inst, up: testenv.NewUpstream(t)}
	w.s = testenv.Site{K1: u, Upstream: w.up.URL, Users: testenv.DemoUsers(t), Options: []string{"recheck_interval 1s"}}
	w.px = testenv.StartCaddy(t, w.s)
	bob, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")

	// Up: one refresh grant per interval, however many requests.
	start := k1.tokens.Load()
	for range 25 {
		if identityAt(t, bob, w.px.URL, "/x") != "bob" {
			t.Fatal("the session ended at a recheck")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := k1.tokens.Load() - start; n < 1 || n > 3 {
		t.Fatalf("%d refresh grants in 2.5s of requests every 100ms with recheck_interval 1s, want 1 to 3", n)
	}

	k1.down.Store(true)
	before := caddymodule.RecheckCount("k1_unreachable")
	for range 30 {
		if identityAt(t, bob, w.px.URL, "/x") != "bob" {
			t.Fatal("the session ended while K1 was unreachable")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if caddymodule.RecheckCount("k1_unreachable") <= before {
		t.Fatal("rechecks_total{outcome=\"k1_unreachable\"} did not count the failed recheck")
	}

	// K1 is back, and bob was disabled meanwhile: the retried recheck ends it.
	if err := inst.Server.DisableUser("bob"); err != nil {
		t.Fatal(err)
	}
	k1.down.Store(false)
	began := time.Now()
	for identityAt(t, bob, w.px.URL, "/x") == "bob" {
		if time.Since(began) > 4*time.Second {
			t.Fatal("the recheck was not retried after K1 came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRecheckThroughK1: a session without a usable K1 token (here: from
// before rechecks were turned on) is rechecked at its next navigation
// through K1 with prompt=none: invisible while the K1 session lives, the
// end of the proxy session when it does not. API calls are never sent to K1.
func TestRecheckThroughK1(t *testing.T) {
	w := newWorld(t, "recheck_interval off")
	bob, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	alice, _ := w.loginAs(t, "alice", "/.k1sso/login?rd=/x&tenant=acme")
	w.s.Options = []string{"recheck_interval 1s"}
	w.reload(t)
	time.Sleep(1100 * time.Millisecond)
	page := []string{"Accept", "text/html"}
	for _, c := range []*http.Client{bob, alice} {
		get(t, c, w.px.URL+"/x", page...).Body.Close() // due: the background finds no token
	}
	time.Sleep(300 * time.Millisecond)

	// An API call goes on with the identity.
	resp := get(t, testenv.NoRedirect(bob.Jar), w.px.URL+"/api", "Accept", "application/json")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("an API call of a session due for a recheck at K1 lost the identity")
	}
	// A navigation goes through K1 with prompt=none and comes back signed in.
	resp = get(t, testenv.NoRedirect(bob.Jar), w.px.URL+"/x", page...)
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), w.k1.URL) || loc.Query().Get("prompt") != "none" {
		t.Fatalf("navigation due for a recheck: %d %q, want K1 with prompt=none", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(t, bob, loc.String())
	if s := testenv.DecodeSeen(t, resp); s.Path != "/x" || s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("after the silent recheck: %s as %q", s.Path, s.Header.Get("X-BMS-User"))
	}

	// Alice's K1 session ended without a logout token: login_required ends
	// the proxy session, and the browser is asked to sign in at K1.
	old := cookieOf(alice, w.px.URL, "k1sso")
	if err := w.k1.Server.DisableUser("alice"); err != nil {
		t.Fatal(err)
	}
	if err := w.k1.Server.EnableUser("alice"); err != nil {
		t.Fatal(err)
	}
	resp = get(t, alice, w.px.URL+"/x", page...)
	b := body(t, resp)
	if resp.Request.URL.Host != strings.TrimPrefix(w.k1.URL, "http://") || resp.Request.URL.Path != "/login" {
		t.Fatalf("after login_required: %d at %s, want K1's login page: %.200s", resp.StatusCode, resp.Request.URL, b)
	}
	resp = withCookie(t, w.px.URL, "/x", old)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
		t.Fatalf("the old session after login_required: %d %q, want it revoked", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestRecheckOfflineScopeRefused: an OP that lists offline_access but
// answers invalid_scope to it (Ory Hydra does, for a client not allowed
// the scope) does not break sign-in: the login starts again without it,
// and later logins no longer ask for it.
func TestRecheckOfflineScopeRefused(t *testing.T) {
	op := hostileop.Start(t)
	op.SetDiscovery(func(d map[string]any) {
		d["scopes_supported"] = []string{"openid", "email", "profile", "offline_access"}
	})
	var refused atomic.Int64
	op.Set(hostileop.Behavior{Callback: func(v url.Values) {
		if refused.Add(1) == 1 {
			v.Del("code")
			v.Set("error", "invalid_scope")
			v.Set("error_description", "The OAuth 2.0 Client is not allowed to request scope 'offline_access'.")
		}
	}})
	h := startHostile(t, op, op.URL)
	c := testenv.NoRedirect(newJar())
	next := h.px.URL + "/.k1sso/login?rd=/dashboard"
	var scopes []string
	for hop := 0; hop < 12 && next != ""; hop++ {
		resp := get(t, c, next)
		resp.Body.Close()
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/dashboard" {
				t.Fatalf("login ended with %d at %s", resp.StatusCode, resp.Request.URL.Path)
			}
			break
		}
		if strings.HasPrefix(loc.String(), op.URL) && loc.Query().Get("scope") != "" {
			scopes = append(scopes, loc.Query().Get("scope"))
		}
		next = loc.String()
	}
	if len(scopes) != 2 || !strings.Contains(scopes[0], "offline_access") || strings.Contains(scopes[1], "offline_access") {
		t.Fatalf("scopes asked: %q; want offline_access once, then a login without it", scopes)
	}
	if s := testenv.DecodeSeen(t, get(t, c, h.px.URL+"/dashboard")); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("no session after the login without offline_access")
	}
	_, resp := h.login(t)
	h.accepted(t, resp)
}
