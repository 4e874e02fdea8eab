package k1dev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"time"
)

// sessionCookie names the K1 browser session cookie.
const sessionCookie = "k1dev_session"

// clientLogin records one login of a client within a K1 session.
type clientLogin struct {
	clientID    string
	redirectURI string // the redirect URI that login used (origin rule)
}

// session is a K1 browser session.
type session struct {
	id       string // cookie value (secret)
	sid      string // session id sent to clients (sid claim)
	username string
	authTime time.Time
	csrf     string
	clients  []clientLogin
}

// freshEnough reports whether the session satisfies max_age at now.
func (s *session) freshEnough(maxAge *time.Duration, now time.Time) bool {
	return maxAge == nil || now.Sub(s.authTime) <= *maxAge
}

type sessionKey struct{}

// withSession returns ctx carrying the browser's K1 session.
func withSession(ctx context.Context, s *session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// sessionFromContext returns the K1 session of the request, or nil.
func sessionFromContext(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// randomID returns 32 random bytes, base64url.
func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionFromRequest looks up the session named by the request's cookie.
func (s *Server) sessionFromRequest(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[c.Value]
}

// startSession creates (or, for the same user, refreshes) the browser's K1
// session after a successful two-step login and sets its cookie. A session
// of another user is ended first.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, username string) *session {
	now := time.Now()
	if old := sessionFromContext(r.Context()); old != nil {
		s.mu.Lock()
		same := s.sessions[old.id] == old && old.username == username
		if same {
			old.authTime = now
		}
		s.mu.Unlock()
		if same {
			return old
		}
		_ = s.endSessions([]*session{old}) // logged; the new login goes on
	}
	sess := &session{id: randomID(), sid: randomID()[:22], username: username, authTime: now, csrf: randomID()}
	s.mu.Lock()
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.id, Path: "/", HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
	return sess
}

// clearCookie deletes the session cookie in the browser.
func (s *Server) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// completeRequest marks an auth request as authenticated by sess and records
// the client login in the session (for back- and front-channel logout).
func (s *Server) completeRequest(ar *authRequest, sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// The op reads ar after fetching it under storage.mu; write under it too.
	s.storage.mu.Lock()
	ar.done = true
	ar.username = sess.username
	ar.subject = "k1|" + sess.username
	ar.authTime = sess.authTime
	ar.sid = sess.sid
	s.storage.mu.Unlock()
	for _, cl := range sess.clients {
		if cl.clientID == ar.clientID && cl.redirectURI == ar.redirectURI {
			return
		}
	}
	sess.clients = append(sess.clients, clientLogin{clientID: ar.clientID, redirectURI: ar.redirectURI})
}

// userBySubject returns the user of a sub claim, or nil.
func (s *Server) userBySubject(sub string) *User {
	for i := range s.cfg.Users {
		if s.cfg.Users[i].Subject() == sub {
			return &s.cfg.Users[i]
		}
	}
	return nil
}
