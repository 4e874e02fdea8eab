package caddymodule

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// SetRecheckRetry sets how soon a recheck that could not reach K1 is tried
// again, until the test ends.
func SetRecheckRetry(tb testing.TB, d time.Duration) { setTunable(tb, recheckRetry, d) }

// RecheckCount is the process-wide rechecks_total of an outcome.
func RecheckCount(outcome string) float64 {
	return testutil.ToFloat64(k1ssoMetrics.rechecks.WithLabelValues(outcome))
}
