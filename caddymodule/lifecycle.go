package caddymodule

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// lifecycleUnit is the shortest idle timeout and how often the cookie of a
// session in use is re-issued. A build with the k1sso_shortunits tag (the
// browser tests) makes it a second, so a flow can go idle without waiting
// minutes; it is fixed before any handler is provisioned.
var lifecycleUnit = newTunable(time.Minute)

// LifecycleOptions configure how a session ends besides its lifetime: after
// inactivity, and the notice that it is about to end. Caddyfile:
//
//	session_idle_timeout <duration>
//	expiry_notice        <duration>
type LifecycleOptions struct {
	// How long a session may go unused before it is over, on every
	// instance: the session cookie carries when it was last used (re-issued
	// at most once a minute while in use), and a session unused for longer
	// is refused like an expired one. It ends open WebSockets and event
	// streams too. `session_lifetime` stays the hard end however active the
	// session is. At least 1m. Default: 0 (off: only `session_lifetime`
	// ends a session).
	SessionIdleTimeout caddy.Duration `json:"session_idle_timeout,omitempty"`

	// How long before the end of a session (`session_lifetime`) its HTML
	// pages show a small notice with the time it ends and a "Stay signed in"
	// link, which renews the session through K1 and comes back to the same
	// page. Default: 0 (off).
	ExpiryNotice caddy.Duration `json:"expiry_notice,omitempty"`

	idle       time.Duration // 0: off
	touchEvery time.Duration // how often a used session's cookie is re-issued
	notice     time.Duration // 0: off
}

// provisionLifecycle checks the options; it names the option in each error.
func (h *Handler) provisionLifecycle() error {
	h.idle = time.Duration(h.SessionIdleTimeout)
	unit := lifecycleUnit.get()
	h.touchEvery = unit
	if h.idle < 0 || (h.idle > 0 && h.idle < unit) {
		return fmt.Errorf("session_idle_timeout: %s is too short (minimum %s)", h.idle, strings.TrimSuffix(unit.String(), "0s"))
	}
	h.notice = time.Duration(h.ExpiryNotice)
	if h.notice < 0 {
		return fmt.Errorf("expiry_notice: %s must not be negative", h.notice)
	}
	return nil
}
