package redisstore_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/internal/testenv"
	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/redisstore"
	"github.com/k1sso/k1sso/store/storetest"
)

func TestContract(t *testing.T) {
	rd := testenv.StartRedis(t)
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		s, err := redisstore.New(rd.URL, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The contract holds on a Cluster (a scan of every master) and on a
// Sentinel-managed master with a replica (revocations wait for it).
func TestContractClusterAndSentinel(t *testing.T) {
	cl := testenv.StartRedisCluster(t)
	t.Run("cluster", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
			s, err := redisstore.New(cl.URL, opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	rs := testenv.StartRedisSentinel(t, 500*time.Millisecond, 2*time.Second)
	t.Run("sentinel", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
			s, err := redisstore.New(rs.URL, opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

// syncs counts Watch's syncs.
type syncs struct{ n atomic.Int32 }

func (*syncs) Add(store.Revocation) {}
func (s *syncs) Synced(time.Time)   { s.n.Add(1) }

// Watch keeps syncing through a restart of Redis: it stops while Redis is
// gone and starts again once it is back.
func TestWatchSurvivesRestart(t *testing.T) {
	rd := testenv.StartRedis(t)
	s, err := redisstore.New(rd.URL, store.Options{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sk := &syncs{}
	go func() { defer close(done); s.Watch(ctx, sk) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "a first sync", func() bool { return sk.n.Load() > 0 })
	rd.Stop()
	time.Sleep(300 * time.Millisecond)
	down := sk.n.Load()
	time.Sleep(time.Second)
	if sk.n.Load() != down {
		t.Fatal("Watch synced while Redis was down")
	}
	if _, err := s.Get(context.Background(), "k"); err == nil || err == store.ErrNotFound {
		t.Fatalf("Get with Redis down: %v", err)
	}
	rd.Start()
	waitFor(t, "a sync after the restart", func() bool { return sk.n.Load() > down })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no %s within 10 s", what)
		}
	}
}

func TestGetLegacy(t *testing.T) {
	rd := testenv.StartRedis(t)
	if _, err := rd.Do("SET", "k1sso:integration/acme", `{"on":false}`); err != nil {
		t.Fatal(err)
	}
	s, _ := redisstore.New(rd.URL, store.Options{Namespace: "ns"})
	defer s.Close()
	ctx := context.Background()
	if b, err := s.GetLegacy(ctx, "integration/acme"); err != nil || string(b) != `{"on":false}` {
		t.Fatalf("GetLegacy: %q %v", b, err)
	}
	if _, err := s.GetLegacy(ctx, "integration/other"); err != store.ErrNotFound {
		t.Fatalf("GetLegacy of a missing key: %v", err)
	}
}

// provisioned loads a Backend from JSON as Caddy does.
func provisioned(t *testing.T, rawURL string) (*redisstore.Backend, error) {
	t.Helper()
	b := &redisstore.Backend{URL: rawURL}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := b.Provision(ctx); err != nil {
		return nil, err
	}
	return b, b.Validate()
}

func TestBackend(t *testing.T) {
	var b redisstore.Backend
	if id := b.CaddyModule().ID; id != "http.handlers.k1sso.stores.redis" {
		t.Fatalf("module ID %s", id)
	}
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser("redis {env.K1SSO_TEST_REDIS_URL}")); err != nil || b.URL != "{env.K1SSO_TEST_REDIS_URL}" {
		t.Fatalf("Caddyfile: %v %q", err, b.URL)
	}
	for _, in := range []string{"redis", "redis a b", "redis a {\n\tx\n}"} {
		if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil || !strings.Contains(err.Error(), "store takes `caddy` or `redis <url>`") {
			t.Errorf("%q: %v", in, err)
		}
	}

	t.Setenv("K1SSO_TEST_REDIS_PASS", "s3cret-pass")
	t.Setenv("K1SSO_TEST_EMPTY", "")
	p, err := provisioned(t, "redis://:{env.K1SSO_TEST_REDIS_PASS}@127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if k := p.PoolKey(); strings.Contains(k, "s3cret") || !strings.HasPrefix(k, "redis:") {
		t.Errorf("PoolKey %q", k)
	}
	if s := p.String(); s != "redis redis://***@127.0.0.1:6379/0" {
		t.Errorf("String %q", s)
	}
	other, _ := provisioned(t, "redis://:other@127.0.0.1:6379/0")
	if other.PoolKey() == p.PoolKey() {
		t.Error("two URLs share a pool key")
	}
	st, err := p.OpenStore(caddy.Context{}, store.Options{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()

	for in, want := range map[string]string{
		"":                       "store: redis needs a URL",
		"{env.K1SSO_TEST_UNSET}": "K1SSO_TEST_UNSET is unset",
		"{env.K1SSO_TEST_UNSET}{env.K1SSO_TEST_UNSET2}":         "are unset",
		"{env.K1SSO_TEST_EMPTY}":                                "set but empty",
		"redis://:{env.K1SSO_TEST_REDIS_PASS}@127.0.0.1:6379/x": "store: redis URL",
	} {
		_, err := provisioned(t, in)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
