package k1dev

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// refreshLifetime is how long a refresh token can be used after it was
// issued (each use issues a new one and retires the old).
const refreshLifetime = 24 * time.Hour

// refreshToken is an opaque refresh token kept in memory. It is bound to
// the K1 session it was issued in: when that session ends (logout, or the
// user was disabled), the token is refused like a token of a disabled user.
type refreshToken struct {
	subject  string
	clientID string
	scopes   []string
	authTime time.Time
	sid      string
	expires  time.Time
}

var _ op.RefreshTokenRequest = (*refreshToken)(nil)

func (t *refreshToken) GetAMR() []string                 { return []string{"pwd", "otp"} }
func (t *refreshToken) GetAudience() []string            { return []string{t.clientID} }
func (t *refreshToken) GetAuthTime() time.Time           { return t.authTime }
func (t *refreshToken) GetClientID() string              { return t.clientID }
func (t *refreshToken) GetScopes() []string              { return t.scopes }
func (t *refreshToken) GetSubject() string               { return t.subject }
func (t *refreshToken) SetCurrentScopes(scopes []string) { t.scopes = scopes }

// requestSID is the K1 session id of a token request ("" without one).
func requestSID(req any) string {
	switch r := req.(type) {
	case *authRequest:
		return r.sid
	case *refreshToken:
		return r.sid
	}
	return ""
}

// CreateAccessAndRefreshTokens implements op.Storage: an access token and a
// new refresh token, for a code exchange that asked for offline_access or
// for a refresh grant (which retires current).
func (s *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	if s.sessions.isDisabled(req.GetSubject()) {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the user is disabled")
	}
	rt := &refreshToken{subject: req.GetSubject(), scopes: slices.Clone(req.GetScopes()), sid: requestSID(req),
		expires: time.Now().Add(refreshLifetime)}
	switch r := req.(type) {
	case *authRequest:
		rt.clientID, rt.authTime = r.clientID, r.authTime
	case *refreshToken:
		rt.clientID, rt.authTime = r.clientID, r.authTime
	}
	access, exp, err := s.CreateAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if t := s.accessToken(access); t != nil {
		t.clientID = rt.clientID
	}
	id := randomID()
	s.mu.Lock()
	if current != "" {
		delete(s.refresh, current)
	}
	s.refresh[id] = rt
	s.mu.Unlock()
	return access, id, exp, nil
}

func (s *storage) accessToken(id string) *accessToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[id]
}

// TokenRequestByRefreshToken implements op.Storage. The op answers
// invalid_grant for every error: an unknown or expired token, a disabled
// user, a K1 session that ended.
func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	rt, ok := s.refresh[token]
	s.mu.Unlock()
	switch {
	case !ok || time.Now().After(rt.expires):
		return nil, op.ErrInvalidRefreshToken
	case s.sessions.isDisabled(rt.subject):
		slog.Info("k1dev: refresh refused: user disabled", "sub", rt.subject)
		return nil, op.ErrInvalidRefreshToken
	case rt.sid != "" && !s.sessions.lives(rt.sid):
		slog.Info("k1dev: refresh refused: K1 session ended", "sub", rt.subject)
		return nil, op.ErrInvalidRefreshToken
	}
	return rt, nil
}

// GetRefreshTokenInfo implements op.Storage (token revocation).
func (s *storage) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || rt.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, token, nil
}

// DisableUser disables a user, as a K1 administrator deprovisioning an
// account does: their K1 sessions end without any logout notification to
// the relying parties, and from now on their logins, refresh grants and
// userinfo calls are refused. EnableUser undoes it (sessions stay ended).
func (s *Server) DisableUser(username string) error {
	return s.setDisabled(username, true)
}

// EnableUser lets a disabled user sign in again.
func (s *Server) EnableUser(username string) error {
	return s.setDisabled(username, false)
}

func (s *Server) setDisabled(username string, off bool) error {
	u := s.cfg.user(username)
	if u == nil {
		return fmt.Errorf("user %q: %w", username, errNotFound)
	}
	s.sessions.setDisabled(u, off)
	return nil
}

// handleDisableUser serves POST /dev/disable-user (and /dev/enable-user):
// username=<name>; only from a loopback address, like the key rotation.
func (s *Server) handleDisableUser(w http.ResponseWriter, r *http.Request) {
	if !isLoopbackAddr(r.RemoteAddr) {
		http.Error(w, "forbidden: only from loopback", http.StatusForbidden)
		return
	}
	username := r.PostFormValue("username")
	off := r.URL.Path == "/dev/disable-user"
	if err := s.setDisabled(username, off); err != nil {
		http.Error(w, "unknown user", http.StatusNotFound)
		return
	}
	state := "enabled"
	if off {
		state = "disabled"
	}
	slog.Info("k1dev: user "+state, "username", username)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "user", username, state)
}
