package caddymodule

import (
	"strings"
	"testing"
	"time"
)

// ShiftClock moves the clock of sessions, revocations and the caddy store
// forward by d until the test ends.
func ShiftClock(tb testing.TB, d time.Duration) {
	setTunable(tb, clockShift, d)
}

// IntegrationCacheLen is the number of tenants whose names start with
// prefix that the integration caches of every pooled state hold (other
// tests' pooled states may still be in the pool, with tenants of their
// own).
func IntegrationCacheLen(prefix string) int {
	n := 0
	sharedPool.Range(func(_, v any) bool {
		s, ok := v.(*shared)
		if !ok || s == nil || s.integration == nil {
			return true
		}
		for _, k := range s.integration.entries.Keys() {
			if strings.HasPrefix(k, prefix) {
				n++
			}
		}
		return true
	})
	return n
}
