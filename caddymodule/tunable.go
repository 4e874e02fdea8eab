package caddymodule

import (
	"sync/atomic"
	"time"
)

// tunable is a duration that tests change while goroutines of earlier
// tests (pooled state being torn down) may still read it.
type tunable struct{ v atomic.Int64 }

func newTunable(d time.Duration) *tunable {
	t := &tunable{}
	t.v.Store(int64(d))
	return t
}

func (t *tunable) get() time.Duration  { return time.Duration(t.v.Load()) }
func (t *tunable) set(d time.Duration) { t.v.Store(int64(d)) }
