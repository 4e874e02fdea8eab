package caddymodule

import "testing"

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
