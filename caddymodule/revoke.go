package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// revoked reports whether a session was ended by a logout (here, at K1 or
// at another instance). It reads memory only.
func (h *Handler) revoked(e *sessionEntry) bool { return false }

// serveRevoked answers a request whose session was revoked.
func (h *Handler) serveRevoked(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *sessionEntry) error {
	return next.ServeHTTP(w, r)
}
