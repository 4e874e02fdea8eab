package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// LogoutOptions configure global logout and the shared store.
type LogoutOptions struct{}

func (h *Handler) provisionLogout(ctx caddy.Context) error { return nil }

// interceptLogout handles BMS's logout_path; handled is false for every
// other request.
func (h *Handler) interceptLogout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *sessionEntry) (handled bool, err error) {
	return false, nil
}

// serveLogout is /.k1sso/logout: global logout without BMS.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, http.StatusNotFound, pageData{Title: "Not found"})
	return nil
}

// serveBackchannelLogout is OpenID Connect Back-Channel Logout 1.0.
func (h *Handler) serveBackchannelLogout(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, http.StatusNotFound, pageData{Title: "Not found"})
	return nil
}

// serveFrontchannelLogout is OpenID Connect Front-Channel Logout 1.0.
func (h *Handler) serveFrontchannelLogout(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, http.StatusNotFound, pageData{Title: "Not found"})
	return nil
}
