package caddymodule

import (
	"testing"
	"time"
)

// ShiftClock moves the clock of sessions, revocations and the caddy store
// forward by d until the test ends.
func ShiftClock(tb testing.TB, d time.Duration) {
	old := clockShift.Swap(int64(d))
	tb.Cleanup(func() { clockShift.Store(old) })
}

// SetStoreSweep sets how often the caddy store drops expired entries.
func SetStoreSweep(tb testing.TB, d time.Duration) { setTunable(tb, caddyStoreSweep, d) }

// IntegrationCacheLen is the number of tenants the integration caches of
// every pooled state hold.
func IntegrationCacheLen() int {
	n := 0
	integrationCaches.Range(func(_, v any) bool {
		n += v.(*integrationCache).entries.Len()
		return true
	})
	return n
}
