package caddymodule

import (
	"testing"
	"time"
)

// SetReauthWindow sets how recent the K1 sign-in that changes an integration
// switch must be, and returns a function that restores the old window.
func SetReauthWindow(d time.Duration) (restore func()) {
	old := reauthWindow.Swap(int64(d))
	return func() { reauthWindow.Store(old) }
}

// SetLifecycleUnit sets the shortest idle timeout and the cookie re-issue
// interval for the handlers provisioned until the test ends.
func SetLifecycleUnit(tb testing.TB, d time.Duration) { setVar(tb, &lifecycleUnit, d) }
