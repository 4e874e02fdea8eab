package caddymodule

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// The same revocation repeated while the store is down is pending once.
func TestPendingRevocationsDeduplicated(t *testing.T) {
	var p []revocation
	for i := 0; i < 100; i++ {
		p = addPending(p, revocation{Kind: revokeSID, Value: "sid-1", Expires: int64(1000 + i)})
	}
	p = addPending(p, revocation{Kind: revokeSID, Value: "sid-2", Expires: 5})
	if len(p) != 2 || p[0].Expires != 1099 {
		t.Fatalf("pending: %+v", p)
	}
}

// Concurrent Extends of one key on Caddy's file storage keep the latest
// time, and do not wait for the storage lock's one-second poll.
func TestCaddyStoreExtendKeepsLatest(t *testing.T) {
	st := newCaddyStore(&certmagic.FileStorage{Path: t.TempDir()}, storeNamespace("https://k1.example", "c"), nil)
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
	got, ok, err := storedTime(ctx, st, "login/sub/x")
	if err != nil || !ok || got != base+19 {
		t.Fatalf("stored %d %v %v, want %d", got, ok, err, base+19)
	}
	if err := st.Extend(ctx, "login/sub/x", base); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := storedTime(ctx, st, "login/sub/x"); got != base+19 {
		t.Fatalf("an earlier time replaced the later one: %d", got)
	}
}
