package caddystore_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage" // the file_system storage

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
	"github.com/k1sso/k1sso/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		return caddystore.New(&certmagic.FileStorage{Path: folderOf(t)}, opts)
	})
}

// folderOf is one storage folder per top-level test, shared by its
// subtests.
var folders sync.Map

func folderOf(t *testing.T) string {
	name, _, _ := strings.Cut(t.Name(), "/")
	v, _ := folders.LoadOrStore(name, t.TempDir())
	return v.(string)
}

// clock is a test clock that moves only when told.
type clock struct{ shift atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.shift.Load())) }
func (c *clock) add(d time.Duration) { c.shift.Add(int64(d)) }

// Concurrent Extends of one key on Caddy's file storage keep the latest
// time, and do not wait for the storage lock's one-second poll.
func TestExtendKeepsLatest(t *testing.T) {
	st := caddystore.New(&certmagic.FileStorage{Path: t.TempDir()}, store.Options{Namespace: "ns"})
	ctx := context.Background()
	base := time.Now().Unix() + 3600
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Go(func() {
			if err := st.Extend(ctx, "login/sub/x", base+int64(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took > time.Second {
		t.Errorf("20 concurrent Extends took %s", took)
	}
	got, ok, err := store.StoredTime(ctx, st, "login/sub/x", time.Now())
	if err != nil || !ok || got != base+19 {
		t.Fatalf("stored %d %v %v, want %d", got, ok, err, base+19)
	}
	if err := st.Extend(ctx, "login/sub/x", base); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := store.StoredTime(ctx, st, "login/sub/x", time.Now()); got != base+19 {
		t.Fatalf("an earlier time replaced the later one: %d", got)
	}
}

// countUnder counts the files below k1sso/<ns>/<folder>.
func countUnder(t *testing.T, fs certmagic.Storage, ns, folder string) int {
	t.Helper()
	keys, err := fs.List(context.Background(), "k1sso/"+ns+"/"+folder, true)
	if err != nil {
		return 0
	}
	return len(keys)
}

// syncs counts Watch's syncs.
type syncs struct {
	n   atomic.Int32
	add atomic.Int32
}

func (s *syncs) Add(store.Revocation) { s.add.Add(1) }
func (s *syncs) Synced(time.Time)     { s.n.Add(1) }

// Expired entries of the Expiring folders go at the first poll after a
// minute of the store's clock; those of other folders and live ones stay.
// Expired revocation files go too.
func TestWatchSweepsByItsClock(t *testing.T) {
	fs := &certmagic.FileStorage{Path: t.TempDir()}
	clk := &clock{}
	st := caddystore.New(fs, store.Options{Namespace: "ns", Now: clk.now, Expiring: []string{"state", "missing"}})
	ctx := context.Background()
	for _, k := range []string{"state/a", "state/b"} {
		if err := st.Put(ctx, k, []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	_ = st.Put(ctx, "state/live", []byte("x"), 3*time.Hour)
	_ = st.Put(ctx, "recheck/unswept", []byte("x"), time.Minute)
	_ = st.Revoke(ctx, store.Revocation{Kind: store.KindSID, Value: "s", Expires: clk.now().Unix() + 60})
	// A file shorter than an expiry is being written: never deleted.
	_ = fs.Store(ctx, "k1sso/ns/state/partial", []byte{1, 2})

	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	sk := &syncs{}
	go func() { defer close(done); st.Watch(wctx, sk) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the first poll", func() bool { return sk.n.Load() > 0 && sk.add.Load() == 1 })
	if n := countUnder(t, fs, "ns", "state"); n != 4 {
		t.Fatalf("%d entries under state/ before any time passed, want 4", n)
	}
	clk.add(2 * time.Hour)
	waitFor(t, "the sweep", func() bool { return countUnder(t, fs, "ns", "state") == 2 })
	waitFor(t, "the expired revocation's deletion", func() bool { return countUnder(t, fs, "ns", "revoked") == 0 })
	if _, err := st.Get(ctx, "state/live"); err != nil {
		t.Errorf("a live entry is gone: %v", err)
	}
	if countUnder(t, fs, "ns", "recheck") != 1 {
		t.Error("an entry outside the Expiring folders was swept")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no %s within 5 s", what)
		}
	}
}

// GetLegacy reads the layout before namespaces; a value that was never
// wrapped with an expiry is no value.
func TestGetLegacy(t *testing.T) {
	fs := &certmagic.FileStorage{Path: t.TempDir()}
	st := caddystore.New(fs, store.Options{Namespace: "ns"})
	ctx := context.Background()
	_ = fs.Store(ctx, "k1sso/integration/acme", store.WrapExpiry([]byte(`{"on":false}`), 0, time.Now()))
	if b, err := st.GetLegacy(ctx, "integration/acme"); err != nil || string(b) != `{"on":false}` {
		t.Fatalf("GetLegacy: %q %v", b, err)
	}
	_ = fs.Store(ctx, "k1sso/ns/short", []byte{1})
	if _, err := st.Get(ctx, "short"); err != store.ErrNotFound {
		t.Fatalf("a value without expiry: %v", err)
	}
	if err := st.Delete(ctx, "short"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// failing is a storage whose every call fails.
type failing struct{ certmagic.Storage }

var errDown = errorString("storage down")

type errorString string

func (e errorString) Error() string { return string(e) }

func (failing) Load(context.Context, string) ([]byte, error)         { return nil, errDown }
func (failing) Store(context.Context, string, []byte) error          { return errDown }
func (failing) List(context.Context, string, bool) ([]string, error) { return nil, errDown }
func (failing) Lock(context.Context, string) error                   { return errDown }

// A storage that fails is an error of each call, never a value, and Watch
// does not claim to be in sync while it fails.
func TestStorageErrors(t *testing.T) {
	st := caddystore.New(failing{}, store.Options{Namespace: "ns", Expiring: []string{"state"}})
	ctx := context.Background()
	if _, err := st.Get(ctx, "k"); err != errDown {
		t.Errorf("Get: %v", err)
	}
	if _, err := st.PutIfAbsent(ctx, "k", nil, 0); err != errDown {
		t.Errorf("PutIfAbsent: %v", err)
	}
	if err := st.Extend(ctx, "k", time.Now().Unix()+60); err != errDown {
		t.Errorf("Extend: %v", err)
	}
	if _, err := st.Revocations(ctx); err != errDown {
		t.Errorf("Revocations: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	sk := &syncs{}
	st.Watch(wctx, sk)
	if sk.n.Load() != 0 {
		t.Error("Watch synced while the storage failed")
	}
}

func TestBackend(t *testing.T) {
	var b caddystore.Backend
	if id := b.CaddyModule().ID; id != "http.handlers.k1sso.stores.caddy" {
		t.Fatalf("module ID %s", id)
	}
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser("caddy")); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"caddy extra", "caddy {\n\tx\n}"} {
		if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil || !strings.Contains(err.Error(), "store caddy takes no argument") {
			t.Errorf("%q: %v", in, err)
		}
	}
	if b.PoolKey() != "caddy" || b.String() != "Caddy's storage" {
		t.Errorf("PoolKey %q, String %q", b.PoolKey(), b.String())
	}
	raw, _ := json.Marshal(map[string]any{"module": "file_system", "root": t.TempDir()})
	ctx, err := caddy.ProvisionContext(&caddy.Config{StorageRaw: raw})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.OpenStore(ctx, store.Options{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(context.Background(), "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
}
