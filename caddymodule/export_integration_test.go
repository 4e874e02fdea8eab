package caddymodule

import (
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// SetReauthWindow sets how recent the K1 sign-in that changes an integration
// switch must be, until the test ends.
func SetReauthWindow(tb testing.TB, d time.Duration) { setTunable(tb, reauthWindow, d) }

// SetLifecycleUnit sets the shortest idle timeout and the cookie re-issue
// interval for the handlers provisioned until the test ends.
func SetLifecycleUnit(tb testing.TB, d time.Duration) { setTunable(tb, lifecycleUnit, d) }

// StreamsClosed is streams_closed_total{reason} of this process.
func StreamsClosed(reason string) float64 {
	var m dto.Metric
	_ = streamsClosed.WithLabelValues(reason).Write(&m)
	return m.GetCounter().GetValue()
}
