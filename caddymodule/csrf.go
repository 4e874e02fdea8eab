package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// csrfToken binds a form to one session.
func (h *Handler) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, h.shared.codecs.csrf)
	m.Write([]byte("csrf:" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) validCSRF(sessionID, token string) bool {
	return token != "" && hmac.Equal([]byte(token), []byte(h.csrfToken(sessionID)))
}
