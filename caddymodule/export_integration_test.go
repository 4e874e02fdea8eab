package caddymodule

import "time"

// SetReauthWindow sets how recent the K1 sign-in that changes an integration
// switch must be, and returns a function that restores the old window.
func SetReauthWindow(d time.Duration) (restore func()) {
	old := reauthWindow.Swap(int64(d))
	return func() { reauthWindow.Store(old) }
}
