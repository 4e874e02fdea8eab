package k1dev

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"sync"
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

// browserSessions are the K1 browser sessions and the users an
// administrator disabled. The Server owns them; the token storage asks them
// two questions (is this user disabled, does this K1 session still live) and
// records the client logins it completes. Its lock is never held while
// another is taken.
type browserSessions struct {
	mu       sync.Mutex
	byID     map[string]*session // by cookie value
	disabled map[string]bool     // by subject
}

func newBrowserSessions() *browserSessions {
	return &browserSessions{byID: map[string]*session{}, disabled: map[string]bool{}}
}

// get returns the session of a cookie value, or nil.
func (b *browserSessions) get(id string) *session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[id]
}

// add registers a new session.
func (b *browserSessions) add(sess *session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.byID[sess.id] = sess
}

// renew moves the auth time of old to now when it is still registered and
// belongs to username (a second login of the same user), and reports
// whether it did.
func (b *browserSessions) renew(old *session, username string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID[old.id] != old || old.username != username {
		return false
	}
	old.authTime = now
	return true
}

// fresh reports whether sess satisfies max_age at now.
func (b *browserSessions) fresh(sess *session, maxAge *time.Duration, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return sess.freshEnough(maxAge, now)
}

// recordLogin records that clientID logged in through sess with
// redirectURI (for back- and front-channel logout) and returns the
// session's auth time.
func (b *browserSessions) recordLogin(sess *session, clientID, redirectURI string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Contains(sess.clients, clientLogin{clientID: clientID, redirectURI: redirectURI}) {
		sess.clients = append(sess.clients, clientLogin{clientID: clientID, redirectURI: redirectURI})
	}
	return sess.authTime
}

// clientsOf snapshots the client logins of sess.
func (b *browserSessions) clientsOf(sess *session) []clientLogin {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(sess.clients)
}

// end removes sess and returns its client logins; ok is false when it had
// already ended.
func (b *browserSessions) end(sess *session) (clients []clientLogin, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID[sess.id] != sess {
		return nil, false
	}
	delete(b.byID, sess.id)
	return slices.Clone(sess.clients), true
}

// matching returns the sessions for which keep is true.
func (b *browserSessions) matching(keep func(*session) bool) []*session {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*session
	for _, sess := range b.byID {
		if keep(sess) {
			out = append(out, sess)
		}
	}
	return out
}

// lives reports whether a session with this sid still exists.
func (b *browserSessions) lives(sid string) bool {
	return len(b.matching(func(s *session) bool { return s.sid == sid })) > 0
}

// isDisabled reports whether the user of a sub claim was disabled.
func (b *browserSessions) isDisabled(sub string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.disabled[sub]
}

// setDisabled disables (off) or enables the user u. Disabling drops their
// sessions without any logout notification, as a K1 administrator
// deprovisioning an account does.
func (b *browserSessions) setDisabled(u *User, off bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !off {
		delete(b.disabled, u.Subject())
		return
	}
	b.disabled[u.Subject()] = true
	for id, sess := range b.byID {
		if sess.username == u.Username {
			delete(b.byID, id)
		}
	}
}

// sessionFromRequest looks up the session named by the request's cookie.
func (s *Server) sessionFromRequest(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	return s.sessions.get(c.Value)
}

// startSession creates (or, for the same user, refreshes) the browser's K1
// session after a successful two-step login and sets its cookie. A session
// of another user is ended first.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, username string) *session {
	now := time.Now()
	if old := sessionFromContext(r.Context()); old != nil {
		if s.sessions.renew(old, username, now) {
			return old
		}
		_ = s.endSessions([]*session{old}) // logged; the new login goes on
	}
	sess := &session{id: randomID(), sid: randomID()[:22], username: username, authTime: now, csrf: randomID()}
	s.sessions.add(sess)
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

// userBySubject returns the user of a sub claim, or nil.
func (c *Config) userBySubject(sub string) *User {
	for i := range c.Users {
		if c.Users[i].Subject() == sub {
			return &c.Users[i]
		}
	}
	return nil
}
