package caddymodule_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

func TestStoreOptionAdapts(t *testing.T) {
	site := func(store string) string {
		s := testenv.Site{K1: "http://127.0.0.1:9", Upstream: "http://127.0.0.1:9", Users: "/dev/null", Options: []string{store}}
		return s.Caddyfile(t)
	}
	cfg, err := testenv.AdaptCaddyfile(site("store redis {env.K1SSO_TEST_REDIS_URL}"))
	if err != nil || !strings.Contains(string(cfg), `"store":{"backend":"redis","url":"{env.K1SSO_TEST_REDIS_URL}"}`) {
		t.Fatalf("store redis: %v %s", err, cfg)
	}
	if cfg, err = testenv.AdaptCaddyfile(site("store caddy")); err != nil || !strings.Contains(string(cfg), `"store":{"backend":"caddy"}`) {
		t.Fatalf("store caddy: %v %s", err, cfg)
	}
	for _, bad := range []string{"store", "store redis", "store memcached", "store caddy extra", "logout_path", "upstream_cookies"} {
		_, err := testenv.AdaptCaddyfile(site(bad))
		opt := strings.Fields(bad)[0]
		if err == nil || !strings.Contains(err.Error(), opt) {
			t.Errorf("%q: error %v, want one naming %s", bad, err, opt)
		}
	}
}

func TestRedisStoreUnreachableAtStart(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	up := testenv.NewUpstream(t)
	port := testenv.FreePort(t) // nothing listens there
	s := testenv.Site{K1: k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t),
		Options: []string{"store redis redis://:s3cret-pass@127.0.0.1:" + strconv.Itoa(port) + "/0"}}
	err := testenv.LoadCaddyfile(s.Caddyfile(t))
	if err == nil || !strings.Contains(err.Error(), "store") || strings.Contains(err.Error(), "s3cret-pass") {
		t.Fatalf("start with an unreachable redis: %v", err)
	}
}

// TestRedisStoreHoldsStates checks that the redis store keeps what the
// instances share: each used login state once (SET NX, with a TTL), the
// assertion key, and revocations that expire with the session.
func TestRedisStoreHoldsStates(t *testing.T) {
	rd := testenv.StartRedis(t)
	w := newWorld(t, "store redis "+rd.URL, "logout_path /logout")
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { rc.Close() })
	ctx := context.Background()

	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	// Keys are namespaced per deployment: k1sso:<namespace>:<key>.
	if keys, _ := rc.Keys(ctx, "k1sso:*:assertion/es256.pem").Result(); len(keys) != 1 {
		t.Fatal("the assertion key is not in redis")
	}
	states, _ := rc.Keys(ctx, "k1sso:*:state/*").Result()
	if len(states) != 1 {
		t.Fatalf("used states in redis: %v", states)
	}
	if ttl := rc.TTL(ctx, states[0]).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("used state TTL %s", ttl)
	}
	// The store is the authority: a second instance sharing it would see
	// the state as used (SET NX refuses).
	if ok, _ := rc.SetNX(ctx, states[0], "x", time.Minute).Result(); ok {
		t.Fatal("the used state could be claimed again")
	}

	resp := get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/logout")
	resp.Body.Close()
	revoked, _ := rc.Keys(ctx, "k1sso:*:revoked:*").Result()
	if len(revoked) != 1 {
		t.Fatalf("revocations in redis after logout: %v", revoked)
	}
	if ttl := rc.TTL(ctx, revoked[0]).Val(); ttl < 7*time.Hour || ttl > 8*time.Hour+time.Minute {
		t.Errorf("revocation TTL %s, want the session's remaining life (~8h)", ttl)
	}
}

// TestRedisDown checks what docs/store.md promises when Redis is lost:
// revocations this instance knows keep holding, a logout still ends the
// session here, new logins fail closed, and once the instance can no
// longer be sure it has seen every revocation (storeGrace, 5 s) sessions
// get a 503 instead of identity, without losing their cookie; when Redis
// is back everything works again and the revocation made meanwhile
// reaches the store.
func TestRedisDown(t *testing.T) {
	rd := testenv.StartRedis(t)
	w := newWorld(t, "store redis "+rd.URL, "logout_path /logout")
	bob, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	bobCookie := cookieOf(bob, w.px.URL, "k1sso")
	alice, _ := w.loginAs(t, "alice", "/.k1sso/login?tenant=acme&rd=/x")
	aliceCookie := cookieOf(alice, w.px.URL, "k1sso")
	user := func(cookie string) (int, string) {
		resp := withCookie(t, w.px.URL, "/x", cookie)
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return resp.StatusCode, ""
		}
		return resp.StatusCode, testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
	}

	rd.Stop()
	down := time.Now()
	// A logout while Redis is down ends the session here at once.
	resp := get(t, testenv.NoRedirect(bob.Jar), w.px.URL+"/logout")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("logout with redis down: %d", resp.StatusCode)
	}
	if st, u := user(bobCookie); st != http.StatusFound || u != "" {
		t.Fatalf("bob after logout with redis down: %d %q", st, u)
	}
	// New logins fail closed: the used state cannot be recorded.
	_, resp = w.login(t, "carol", "Other Co", "carol-pass", "/.k1sso/login?rd=/x")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a login with redis down: %d, want 503", resp.StatusCode)
	}
	// Within the grace the other session works; after it, 503 and no
	// identity, but the cookie stays.
	if st, u := user(aliceCookie); time.Since(down) < 3*time.Second && (st != http.StatusOK || u != "alice") {
		t.Fatalf("alice right after redis went down: %d %q", st, u)
	}
	var refusedAt time.Duration
	for i := 0; i < 200 && refusedAt == 0; i++ {
		resp := withCookie(t, w.px.URL, "/x", aliceCookie)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			if expired(resp, "k1sso") {
				t.Fatal("the 503 cleared the session cookie")
			}
			refusedAt = time.Since(down)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("with redis down, sessions were refused after %s", refusedAt)
	if refusedAt == 0 || refusedAt < 3*time.Second {
		t.Fatalf("alice's session refused after %s; want the documented 5 s grace", refusedAt)
	}

	rd.Start()
	back := time.Now()
	for i := 0; ; i++ {
		if st, u := user(aliceCookie); st == http.StatusOK && u == "alice" {
			break
		}
		if i > 200 || time.Since(back) > 10*time.Second {
			t.Fatal("alice's session did not work again after redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("sessions worked again %s after redis came back", time.Since(back))
	if st, _ := user(bobCookie); st != http.StatusFound {
		t.Fatalf("bob's revoked session came back with redis: %d", st)
	}
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { rc.Close() })
	for i := 0; ; i++ {
		keys, _ := rc.Keys(context.Background(), "k1sso:*:revoked:*").Result()
		if len(keys) == 1 {
			break
		}
		if i > 60 {
			t.Fatalf("the revocation made while redis was down never reached it: %v", keys)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
