//go:build k1sso_shortunits

package caddymodule

import "time"

// The browser tests build Caddy with this tag: an idle timeout of a few
// seconds, and a cookie re-issued every second while in use.
func init() { lifecycleUnit.set(time.Second) }
