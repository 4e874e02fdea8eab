package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// LaunchOptions configure K1-initiated launch, the app launcher and the
// injection of the login link and launcher icon into BMS pages.
type LaunchOptions struct{}

func (h *Handler) provisionLaunch(ctx caddy.Context) error { return nil }

// serveInitiate is third-party initiated login (OIDC Core §4).
func (h *Handler) serveInitiate(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, http.StatusNotFound, pageData{Title: "Not found"})
	return nil
}

// serveLauncher sends the browser to K1's app launcher.
func (h *Handler) serveLauncher(w http.ResponseWriter, r *http.Request) error {
	h.page(w, r, http.StatusNotFound, pageData{Title: "Not found"})
	return nil
}
