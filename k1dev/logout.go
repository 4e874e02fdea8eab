package k1dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// backchannelEvent is the events member of a logout token.
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// loggedOutPage is a pending "logged out" page: front-channel iframes, then
// where to continue.
type loggedOutPage struct {
	frames  []string
	next    string
	created time.Time
}

// delivery is one back-channel logout to send.
type delivery struct {
	url, clientID, sid, sub string
}

// originFor applies the loopback rule: a URI registered on a loopback origin
// is used on the origin of the loopback redirect URI the login used (which
// may have another port); otherwise the registered URI as is.
func originFor(registered, usedRedirect string) string {
	if registered == "" {
		return ""
	}
	reg, ok := loopbackURL(registered)
	used, ok2 := loopbackURL(usedRedirect)
	if !ok || !ok2 || reg.Host == used.Host {
		return registered
	}
	reg.Scheme, reg.Host = used.Scheme, used.Host
	return reg.String()
}

// frontchannelFrames lists the front-channel logout URLs of sessions, with
// iss and sid.
func (s *Server) frontchannelFrames(sessions []*session) []string {
	var frames []string
	seen := map[string]bool{}
	for _, sess := range sessions {
		for _, cl := range s.sessions.clientsOf(sess) {
			c := s.cfg.client(cl.clientID)
			if c == nil || c.FrontchannelLogoutURI == "" {
				continue
			}
			u, err := url.Parse(originFor(c.FrontchannelLogoutURI, cl.redirectURI))
			if err != nil {
				continue
			}
			q := u.Query()
			q.Set("iss", s.issuer)
			q.Set("sid", sess.sid)
			u.RawQuery = q.Encode()
			if f := u.String(); !seen[f] {
				seen[f] = true
				frames = append(frames, f)
			}
		}
	}
	return frames
}

// endSessions removes sessions and sends a back-channel logout token to
// every client they logged into, synchronously (2 s timeout each, in
// parallel). Failures are logged and returned.
func (s *Server) endSessions(sessions []*session) error {
	var deliveries []delivery
	seen := map[delivery]bool{}
	for _, sess := range sessions {
		clients, ok := s.sessions.end(sess)
		if !ok {
			continue // already ended
		}
		for _, cl := range clients {
			c := s.cfg.client(cl.clientID)
			if c == nil || c.BackchannelLogoutURI == "" {
				continue
			}
			d := delivery{url: originFor(c.BackchannelLogoutURI, cl.redirectURI), clientID: c.ID, sid: sess.sid, sub: "k1|" + sess.username}
			if !seen[d] {
				seen[d] = true
				deliveries = append(deliveries, d)
			}
		}
		slog.Info("k1dev: session ended", "username", sess.username, "clients", len(clients))
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, d := range deliveries {
		wg.Go(func() {
			if err := s.sendLogoutToken(d); err != nil {
				slog.Warn("k1dev: back-channel logout failed", "client", d.clientID, "url", d.url, "err", err)
				mu.Lock()
				errs = append(errs, fmt.Errorf("back-channel logout to %s: %w", d.url, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sendLogoutToken POSTs one logout token (Back-Channel Logout 1.0 §2.4).
func (s *Server) sendLogoutToken(d delivery) error {
	now := time.Now()
	claims, err := json.Marshal(map[string]any{
		"iss":    s.issuer,
		"aud":    d.clientID,
		"iat":    now.Unix(),
		"exp":    now.Add(2 * time.Minute).Unix(),
		"jti":    randomID(),
		"sub":    d.sub,
		"sid":    d.sid,
		"events": map[string]any{backchannelEvent: map[string]any{}},
	})
	if err != nil {
		return fmt.Errorf("encoding claims: %w", err)
	}
	token, err := s.keys.sign(claims, "logout+jwt")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("posting: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting: status %d", resp.StatusCode)
	}
	return nil
}

// EndSessions ends every K1 session of username, sending back-channel
// logouts (for tests: "a logout at K1"). It returns the deliveries that
// failed (the sessions end regardless).
func (s *Server) EndSessions(username string) error {
	return s.endSessions(s.sessions.matching(func(sess *session) bool { return sess.username == username }))
}

// endSessionRequest ends the sessions of an end_session request — the
// browser's own and the one named by the id_token_hint's sid — and returns
// where the browser goes: the logged-out page when there are front-channel
// iframes to load, else straight to the (validated) post-logout redirect.
func (s *Server) endSessionRequest(ctx context.Context, req *op.EndSessionRequest) string {
	var ended []*session
	if sess := sessionFromContext(ctx); sess != nil {
		ended = append(ended, sess)
	}
	if req.IDTokenHintClaims != nil && req.IDTokenHintClaims.SessionID != "" {
		sid := req.IDTokenHintClaims.SessionID
		ended = append(ended, s.sessions.matching(func(sess *session) bool { return sess.sid == sid })...)
	}
	frames := s.frontchannelFrames(ended)
	_ = s.endSessions(ended) // logged; the browser's logout goes on
	return s.loggedOutURL(frames, req.RedirectURI)
}

// loggedOutURL stores a logged-out page and returns its URL, or returns
// continueTo when there is nothing to show.
func (s *Server) loggedOutURL(frames []string, continueTo string) string {
	if len(frames) == 0 && continueTo != "" {
		return continueTo
	}
	id := randomID()
	s.mu.Lock()
	for k, p := range s.loggedOut {
		if time.Since(p.created) > 10*time.Minute {
			delete(s.loggedOut, k)
		}
	}
	s.loggedOut[id] = &loggedOutPage{frames: frames, next: continueTo, created: time.Now()}
	s.mu.Unlock()
	return "/logged-out?id=" + url.QueryEscape(id)
}

// handleLogout is K1's own logout link: it ends the browser's session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var ended []*session
	if sess := sessionFromContext(r.Context()); sess != nil {
		ended = append(ended, sess)
	}
	frames := s.frontchannelFrames(ended)
	_ = s.endSessions(ended) // logged; the browser's logout goes on
	s.clearCookie(w)
	http.Redirect(w, r, s.loggedOutURL(frames, ""), http.StatusSeeOther)
}

// handleLoggedOut shows the logged-out page with its front-channel iframes.
func (s *Server) handleLoggedOut(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p := s.loggedOut[r.URL.Query().Get("id")]
	s.mu.Unlock()
	s.clearCookie(w)
	r = r.WithContext(withSession(r.Context(), nil))
	data := map[string]any{"Title": "Logged out"}
	if p != nil {
		data["Frames"] = p.frames
		data["Continue"] = p.next
	}
	s.render(w, r, http.StatusOK, "logged_out", data)
}
