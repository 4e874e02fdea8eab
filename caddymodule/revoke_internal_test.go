package caddymodule

import (
	"testing"

	"github.com/k1sso/k1sso/store"
)

// The same revocation repeated while the store is down is pending once.
func TestPendingRevocationsDeduplicated(t *testing.T) {
	var p []store.Revocation
	for i := 0; i < 100; i++ {
		p = addPending(p, store.Revocation{Kind: store.KindSID, Value: "sid-1", Expires: int64(1000 + i)})
	}
	p = addPending(p, store.Revocation{Kind: store.KindSID, Value: "sid-2", Expires: 5})
	if len(p) != 2 || p[0].Expires != 1099 {
		t.Fatalf("pending: %+v", p)
	}
}
