// Package storetest checks that a store.Store keeps the contract k1sso
// relies on. A store module's own tests call Run with a function that opens
// its store:
//
//	func TestContract(t *testing.T) {
//		db := startDatabase(t)
//		storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
//			return mystore.New(db, opts)
//		})
//	}
//
// Run opens several stores per subtest, on the same backing data and
// with different namespaces, and needs about two seconds of real time
// for the expiry and Watch checks.
package storetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k1sso/k1sso/store"
)

// Open opens a store on the data every call of the same test shares, for
// opts.Namespace. Run closes what it opens.
type Open func(t *testing.T, opts store.Options) store.Store

// Run checks the store that open gives against the store.Store contract.
func Run(t *testing.T, open Open) {
	t.Helper()
	ns := 0
	opener := func(t *testing.T) func(namespace string) store.Store {
		return func(namespace string) store.Store {
			t.Helper()
			s := open(t, store.Options{Namespace: namespace, Now: time.Now, Expiring: []string{"state"}})
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
	}
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, open func(namespace string) store.Store, ns string)
	}{
		{"GetPut", testGetPut},
		{"Expiry", testExpiry},
		{"PutIfAbsent", testPutIfAbsent},
		{"Extend", testExtend},
		{"Namespaces", testNamespaces},
		{"Revocations", testRevocations},
		{"Watch", testWatch},
	} {
		ns++
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, opener(t), "storetest-"+strconv.Itoa(ns)+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		})
	}
}

// noErr stops the test at an error of the store.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// expect stops the test when the store broke the contract.
func expect(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testGetPut(t *testing.T, open func(string) store.Store, ns string) {
	s, ctx := open(ns), ctxOf(t)
	_, err := s.Get(ctx, "integration/none")
	expect(t, errors.Is(err, store.ErrNotFound), "Get of a missing key: %v, want store.ErrNotFound", err)
	noErr(t, s.Put(ctx, "integration/acme", []byte(`{"on":true}`), 0))
	noErr(t, s.Put(ctx, "integration/acme", []byte(`{"on":false}`), time.Hour))
	b, err := s.Get(ctx, "integration/acme")
	expect(t, err == nil && string(b) == `{"on":false}`, "Get after Put: %q %v", b, err)
}

// waitGone waits (bounded) until key is not found, and returns how long
// that took.
func waitGone(t *testing.T, s store.Store, key string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, err := s.Get(ctxOf(t), key)
		if errors.Is(err, store.ErrNotFound) {
			return time.Since(start)
		}
		expect(t, err == nil, "Get %s: %v", key, err)
		expect(t, time.Since(start) <= limit, "%s still stored %s after its ttl", key, limit)
		time.Sleep(50 * time.Millisecond)
	}
}

func testExpiry(t *testing.T, open func(string) store.Store, ns string) {
	s, ctx := open(ns), ctxOf(t)
	put := time.Now()
	noErr(t, s.Put(ctx, "state/short", []byte("x"), time.Second))
	ok, err := s.PutIfAbsent(ctx, "state/short-nx", []byte("x"), time.Second)
	expect(t, err == nil && ok, "PutIfAbsent: %v %v", ok, err)
	waitGone(t, s, "state/short", 3*time.Second)
	expect(t, time.Since(put) >= time.Second, "a key with a ttl of 1s was gone after %s", time.Since(put))
	waitGone(t, s, "state/short-nx", time.Second)
	ok, err = s.PutIfAbsent(ctx, "state/short-nx", []byte("y"), time.Minute)
	expect(t, err == nil && ok, "PutIfAbsent over an expired key: %v %v, want true", ok, err)
}

func testPutIfAbsent(t *testing.T, open func(string) store.Store, ns string) {
	a, b, ctx := open(ns), open(ns), ctxOf(t)
	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 4 {
		s := []store.Store{a, b}[i%2]
		wg.Go(func() {
			ok, err := s.PutIfAbsent(ctx, "state/once", []byte(strconv.Itoa(i)), time.Minute)
			if err == nil && ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	n := won.Load()
	_, err := a.Get(ctx, "state/once")
	noErr(t, err)
	expect(t, n == 1, "%d of 4 concurrent PutIfAbsents of one key stored it, want 1", n)
}

func testExtend(t *testing.T, open func(string) store.Store, ns string) {
	a, b, ctx := open(ns), open(ns), ctxOf(t)
	now := time.Now()
	base := now.Unix() + 3600
	var wg sync.WaitGroup
	for i := range 4 {
		s := []store.Store{a, b}[i%2]
		wg.Go(func() {
			_ = s.Extend(ctx, "login/sub/x", base+int64(i)) // a failure shows below
		})
	}
	wg.Wait()
	got, ok, err := store.StoredTime(ctx, a, "login/sub/x", now)
	expect(t, err == nil && ok && got == base+3, "after concurrent Extends: %d %v %v, want %d", got, ok, err, base+3)
	noErr(t, b.Extend(ctx, "login/sub/x", base))
	got, _, _ = store.StoredTime(ctx, a, "login/sub/x", now)
	expect(t, got == base+3, "an earlier time replaced the later one: %d", got)
	noErr(t, a.Extend(ctx, "login/sub/past", now.Unix()-10))
	_, ok, err = store.StoredTime(ctx, a, "login/sub/past", now)
	expect(t, !ok && err == nil, "a time already past was stored: %v %v", ok, err)
}

func testNamespaces(t *testing.T, open func(string) store.Store, ns string) {
	a, b, ctx := open(ns+"-a"), open(ns+"-b"), ctxOf(t)
	noErr(t, a.Put(ctx, "assertion/es256.pem", []byte("a's key"), 0))
	_, err := b.Get(ctx, "assertion/es256.pem")
	expect(t, errors.Is(err, store.ErrNotFound), "another namespace reads the key: %v", err)
	ok, err := b.PutIfAbsent(ctx, "assertion/es256.pem", []byte("b's key"), 0)
	expect(t, err == nil && ok, "PutIfAbsent in another namespace: %v %v", ok, err)
	rv := store.Revocation{Kind: store.KindSID, Value: "sid-a", Expires: time.Now().Unix() + 60}
	noErr(t, a.Revoke(ctx, rv))
	all, err := b.Revocations(ctx)
	expect(t, err == nil && len(all) == 0, "another namespace lists the revocation: %v %v", all, err)
}

func testRevocations(t *testing.T, open func(string) store.Store, ns string) {
	s, ctx := open(ns), ctxOf(t)
	now := time.Now().Unix()
	rvs := []store.Revocation{
		{Kind: store.KindID, Value: "session-1", Expires: now + 60},
		{Kind: store.KindSID, Value: "sid-1", Expires: now + 60},
		{Kind: store.KindSub, Value: "k1|bob", Before: now, K1: true, Expires: now + 60},
		{Kind: store.KindEmail, Value: "bob@acme.example", Before: now, Expires: now + 60},
	}
	for _, rv := range rvs {
		noErr(t, s.Revoke(ctx, rv))
	}
	// The same Name again is one entry; an expired one stores nothing.
	again := rvs[1]
	again.Expires += 30
	noErr(t, s.Revoke(ctx, again))
	noErr(t, s.Revoke(ctx, store.Revocation{Kind: store.KindID, Value: "over", Expires: now - 1}))
	all, err := s.Revocations(ctx)
	noErr(t, err)
	got := map[string]store.Revocation{}
	for _, rv := range all {
		got[rv.Name()] = rv
	}
	expect(t, len(all) == len(rvs) && len(got) == len(rvs), "Revocations: %+v, want the %d stored", all, len(rvs))
	for _, rv := range rvs {
		if rv.Name() == again.Name() {
			rv = again
		}
		expect(t, got[rv.Name()] == rv, "revocation %s: %+v, want %+v", rv.Name(), got[rv.Name()], rv)
	}
}

// sink records what Watch delivers.
type sink struct {
	mu     sync.Mutex
	names  map[string]bool
	synced time.Time
}

func (s *sink) Add(rv store.Revocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names[rv.Name()] = true
}

func (s *sink) Synced(at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.synced = at
}

func (s *sink) has(name string, syncedAfter time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.names[name] && !s.synced.Before(syncedAfter)
}

func testWatch(t *testing.T, open func(string) store.Store, ns string) {
	a, b := open(ns), open(ns)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	sk := &sink{names: map[string]bool{}}
	before := store.Revocation{Kind: store.KindSID, Value: "before-watch", Expires: time.Now().Unix() + 60}
	noErr(t, a.Revoke(ctxOf(t), before))
	go func() { defer close(done); b.Watch(ctx, sk) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return within 5 s of its context's end")
		}
	})
	start := time.Now()
	rv := store.Revocation{Kind: store.KindID, Value: "while-watched", Expires: time.Now().Unix() + 60}
	noErr(t, a.Revoke(ctxOf(t), rv))
	for !sk.has(rv.Name(), start) || !sk.has(before.Name(), start) {
		expect(t, time.Since(start) <= 3*time.Second, "Watch did not deliver both revocations and a sync after them within 3 s")
		time.Sleep(20 * time.Millisecond)
	}
}
