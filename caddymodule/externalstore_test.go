package caddymodule_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/internal/testenv"
	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/storetest"
)

// memBackend is a store written outside k1sso's store packages, only
// against the exported interface: a third party's module. It keeps
// everything in this process's memory, in the database its Caddyfile
// argument names.
type memBackend struct {
	// Database names the memDB the store lives in.
	Database string `json:"database"`
}

func init() { caddy.RegisterModule(memBackend{}) }

func (memBackend) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: store.ModuleNamespace + ".testmemory", New: func() caddy.Module { return new(memBackend) }}
}

// UnmarshalCaddyfile reads `testmemory <database>`.
func (b *memBackend) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.Args(&b.Database) || d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func (b *memBackend) PoolKey() string { return "testmemory:" + b.Database }

func (b *memBackend) OpenStore(_ caddy.Context, opts store.Options) (store.Store, error) {
	return &memStore{db: memDatabase(b.Database), ns: opts.Namespace + "/", now: opts.WithDefaults().Now}, nil
}

// memDB is one database: values with their expiry, and revocations.
type memDB struct {
	mu      sync.Mutex
	vals    map[string]memValue
	revoked map[string]store.Revocation // namespace/name →
	revokes int                         // calls of Revoke
}

type memValue struct {
	v   []byte
	exp time.Time // zero: never
}

var memDBs sync.Map

func memDatabase(name string) *memDB {
	db, _ := memDBs.LoadOrStore(name, &memDB{vals: map[string]memValue{}, revoked: map[string]store.Revocation{}})
	return db.(*memDB)
}

// keys lists the keys of db that start with prefix.
func (db *memDB) keys(prefix string) []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	var out []string
	for k := range db.vals {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

type memStore struct {
	db  *memDB
	ns  string
	now func() time.Time
}

func (s *memStore) live(key string) (memValue, bool) {
	v, ok := s.db.vals[s.ns+key]
	return v, ok && (v.exp.IsZero() || s.now().Before(v.exp))
}

func (s *memStore) Get(_ context.Context, key string) ([]byte, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if v, ok := s.live(key); ok {
		return v.v, nil
	}
	return nil, store.ErrNotFound
}

func (s *memStore) put(key string, value []byte, ttl time.Duration) {
	v := memValue{v: append([]byte(nil), value...)}
	if ttl > 0 {
		v.exp = s.now().Add(ttl)
	}
	s.db.vals[s.ns+key] = v
}

func (s *memStore) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.put(key, value, ttl)
	return nil
}

func (s *memStore) PutIfAbsent(_ context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if _, ok := s.live(key); ok {
		return false, nil
	}
	s.put(key, value, ttl)
	return true, nil
}

func (s *memStore) Extend(_ context.Context, key string, until int64) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if v, ok := s.live(key); ok {
		if old, _ := strconv.ParseInt(string(v.v), 10, 64); old >= until {
			return nil
		}
	}
	if ttl := time.Unix(until+1, 0).Sub(s.now()); ttl > time.Second {
		s.put(key, []byte(strconv.FormatInt(until, 10)), ttl)
	}
	return nil
}

func (s *memStore) Revoke(_ context.Context, rv store.Revocation) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	s.db.revokes++
	if _, _, ok, _ := rv.Record(s.now()); ok {
		s.db.revoked[s.ns+rv.Name()] = rv
	}
	return nil
}

func (s *memStore) Revocations(context.Context) ([]store.Revocation, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	var out []store.Revocation
	for k, rv := range s.db.revoked {
		if strings.HasPrefix(k, s.ns) && rv.Expires >= s.now().Unix() {
			out = append(out, rv)
		}
	}
	return out, nil
}

// Watch polls, as a store without push would.
func (s *memStore) Watch(ctx context.Context, sink store.Sink) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		start := time.Now()
		all, _ := s.Revocations(ctx)
		for _, rv := range all {
			sink.Add(rv)
		}
		sink.Synced(start)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *memStore) Close() error { return nil }

var (
	_ store.Backend         = (*memBackend)(nil)
	_ caddyfile.Unmarshaler = (*memBackend)(nil)
)

// The fake keeps the contract, so what k1sso does with it below is what it
// would do with a real third-party store.
func TestExternalStoreKeepsTheContract(t *testing.T) {
	db := "contract-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		st, _ := (&memBackend{Database: db}).OpenStore(caddy.Context{}, opts)
		return st
	})
}

// A store module written outside k1sso's store packages is loaded by name
// from the Caddyfile, and k1sso keeps its shared state there: the
// assertion key, the used login state, and the revocation of a logout.
func TestExternalStoreLoadedByName(t *testing.T) {
	name := "k1sso-ext-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	opt := "store testmemory " + name
	s := testenv.Site{K1: "http://127.0.0.1:9", Upstream: "http://127.0.0.1:9", Users: "/dev/null", Options: []string{opt}}
	cfg, err := testenv.AdaptCaddyfile(s.Caddyfile(t))
	if err != nil || !strings.Contains(string(cfg), `"store":{"backend":"testmemory","database":"`+name+`"}`) {
		t.Fatalf("adapt: %v %s", err, cfg)
	}
	s.Options = []string{"store testmemory"}
	if _, err := testenv.AdaptCaddyfile(s.Caddyfile(t)); err == nil || !strings.Contains(err.Error(), "wrong argument count") {
		t.Fatalf("the module's own Caddyfile error: %v", err)
	}

	w := newWorld(t, opt, "logout_path /logout")
	db := memDatabase(name)
	if n := len(db.keys("")); n == 0 {
		t.Fatal("k1sso started without writing to the external store")
	}
	if len(db.keys("")) != len(db.keys(strings.SplitN(db.keys("")[0], "/", 2)[0]+"/")) {
		t.Errorf("keys of more than one namespace: %v", db.keys(""))
	}
	c, resp := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login with the external store: %d", resp.StatusCode)
	}
	var states, assertion int
	for _, k := range db.keys("") {
		switch _, rest, _ := strings.Cut(k, "/"); {
		case strings.HasPrefix(rest, "state/"):
			states++
		case rest == "assertion/es256.pem":
			assertion++
		}
	}
	if states != 1 || assertion != 1 {
		t.Fatalf("in the external store after a login: %d used states, %d assertion keys; keys %v", states, assertion, db.keys(""))
	}
	cookie := cookieOf(c, w.px.URL, "k1sso")
	resp = get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/logout")
	resp.Body.Close()
	db.mu.Lock()
	revokes, revoked := db.revokes, len(db.revoked)
	db.mu.Unlock()
	if revokes != 1 || revoked != 1 {
		t.Fatalf("after a logout the external store got %d Revoke calls and holds %d revocations, want 1 and 1", revokes, revoked)
	}
	resp = withCookie(t, w.px.URL, "/x", cookie)
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Fatal("the revoked session still reaches the upstream")
	}
}
