package caddymodule

import (
	"testing"
	"time"
)

// Test hooks for the tests of package caddymodule_test. Each restores the
// old value when the test ends.

// SetJWKSMinRefetch shortens the JWKS refetch interval.
func SetJWKSMinRefetch(tb testing.TB, d time.Duration) { setVar(tb, &jwksMinRefetch, d) }

// SetK1Timeout shortens the timeout of calls to K1.
func SetK1Timeout(tb testing.TB, d time.Duration) { setVar(tb, &k1Timeout, d) }

// SetDiscoveryBackoff shortens the discovery retry backoff.
func SetDiscoveryBackoff(tb testing.TB, lo, hi time.Duration) {
	setVar(tb, &minBackoff, lo)
	setVar(tb, &maxBackoff, hi)
}

func setVar(tb testing.TB, p *time.Duration, d time.Duration) {
	old := *p
	*p = d
	tb.Cleanup(func() { *p = old })
}
