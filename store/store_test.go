package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
)

// What the stores hold must stay readable: the JSON of a revocation and
// its key name are pinned.
func TestRevocationRecordIsStable(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rv := store.Revocation{Kind: store.KindSub, Value: "k1|bob", Before: 1_699_999_000, K1: true, Expires: now.Unix() + 60}
	b, ttl, ok, err := rv.Record(now)
	if err != nil || !ok || ttl != 61*time.Second {
		t.Fatalf("Record: ttl %s, %v %v", ttl, ok, err)
	}
	if want := `{"k":"sub","v":"k1|bob","b":1699999000,"k1":true,"x":1700000060}`; string(b) != want {
		t.Fatalf("JSON %s, want %s", b, want)
	}
	if got, err := store.ParseRevocation(b); err != nil || got != rv {
		t.Fatalf("ParseRevocation: %+v %v", got, err)
	}
	if n := rv.Name(); n != "sub-4be1295b3c4e5eb492e7f8df130f1ca8-1699999000-k1" {
		t.Fatalf("Name %s", n)
	}
	if _, _, ok, err := rv.Record(now.Add(2 * time.Minute)); ok || err != nil {
		t.Fatalf("an expired revocation is recorded: %v %v", ok, err)
	}
}

func TestRevocationNames(t *testing.T) {
	id := store.Revocation{Kind: store.KindID, Value: "a/../b", Expires: 9}
	if n := id.Name(); strings.ContainsAny(n, "/.") || !strings.HasPrefix(n, "id-") || len(n) != len("id-")+32 {
		t.Fatalf("Name %q is not a plain file name", n)
	}
	sub1 := store.Revocation{Kind: store.KindSub, Value: "bob", Before: 1, Expires: 9}
	sub2 := sub1
	sub2.Before = 2
	k1 := sub1
	k1.K1 = true
	email := store.Revocation{Kind: store.KindEmail, Value: "bob", Before: 1, Expires: 9}
	names := map[string]bool{id.Name(): true, sub1.Name(): true, sub2.Name(): true, k1.Name(): true, email.Name(): true}
	if len(names) != 5 {
		t.Fatalf("two logouts share a name: %v", names)
	}
	again := id
	again.Expires = 99
	if again.Name() != id.Name() {
		t.Fatal("the expiry is part of the name")
	}
}

func TestParseRevocationRefuses(t *testing.T) {
	for _, in := range []string{`not json`, `{"k":"other","v":"x","x":9}`, `{"k":"id","v":"","x":9}`, `{"k":"sid","v":"x"}`} {
		if _, err := store.ParseRevocation([]byte(in)); err == nil {
			t.Errorf("%s: parsed", in)
		}
	}
}

func TestExpiryWrapping(t *testing.T) {
	now := time.Unix(1000, 500_000_000)
	b := store.WrapExpiry([]byte("v"), 1500*time.Millisecond, now)
	// 1000.5 + 1.5 = 1002.0: exact, not rounded further.
	if v, ok := store.UnwrapExpiry(b, time.Unix(1001, 999_000_000)); !ok || string(v) != "v" {
		t.Fatalf("before expiry: %q %v", v, ok)
	}
	if _, ok := store.UnwrapExpiry(b, time.Unix(1002, 0)); ok {
		t.Fatal("readable at its expiry")
	}
	// Rounded up: never expires before its ttl.
	b = store.WrapExpiry([]byte("v"), time.Second, now)
	if _, ok := store.UnwrapExpiry(b, time.Unix(1001, 600_000_000)); !ok {
		t.Fatal("expired before its ttl")
	}
	forever := store.WrapExpiry([]byte("v"), 0, now)
	if v, ok := store.UnwrapExpiry(forever, now.Add(100*365*24*time.Hour)); !ok || string(v) != "v" {
		t.Fatal("a ttl of 0 expired")
	}
	if _, ok := store.UnwrapExpiry([]byte{1, 2, 3}, now); ok {
		t.Fatal("a value shorter than its expiry was read")
	}
}

func TestStoredTime(t *testing.T) {
	st := caddystore.New(&certmagic.FileStorage{Path: t.TempDir()}, store.Options{Namespace: "ns"})
	ctx := context.Background()
	now := time.Now()
	if _, ok, err := store.StoredTime(ctx, st, "login/sid/x", now); ok || err != nil {
		t.Fatalf("no time: %v %v", ok, err)
	}
	if err := st.Extend(ctx, "login/sid/x", now.Unix()+60); err != nil {
		t.Fatal(err)
	}
	if until, ok, err := store.StoredTime(ctx, st, "login/sid/x", now); !ok || err != nil || until != now.Unix()+60 {
		t.Fatalf("stored time: %d %v %v", until, ok, err)
	}
	if _, ok, _ := store.StoredTime(ctx, st, "login/sid/x", now.Add(2*time.Minute)); ok {
		t.Fatal("a time that is over counts")
	}
	_ = st.Put(ctx, "login/sid/bad", []byte("soon"), time.Minute)
	if _, _, err := store.StoredTime(ctx, st, "login/sid/bad", now); err == nil || !strings.Contains(err.Error(), "login/sid/bad") {
		t.Fatalf("a value that is no time: %v", err)
	}
	st2 := caddystore.New(failingStorage{}, store.Options{Namespace: "ns"})
	if _, _, err := store.StoredTime(ctx, st2, "login/sid/x", now); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a store that fails: %v", err)
	}
}

type failingStorage struct{ certmagic.Storage }

func (failingStorage) Load(context.Context, string) ([]byte, error) {
	return nil, errors.New("storage down")
}

func TestOptionsDefaults(t *testing.T) {
	o := store.Options{}.WithDefaults()
	if o.Logger == nil || o.Now == nil || time.Since(o.Now()) > time.Minute {
		t.Fatalf("defaults: %+v", o)
	}
	fixed := time.Unix(5, 0)
	if o := (store.Options{Now: func() time.Time { return fixed }}).WithDefaults(); !o.Now().Equal(fixed) {
		t.Fatal("WithDefaults replaced the clock")
	}
}
