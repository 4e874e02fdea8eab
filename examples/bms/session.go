package bms

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// SessionCookie is the name of the BMS's native session cookie.
const SessionCookie = "BMSSESSION"

// sessionLifetime is how long a native session lives.
const sessionLifetime = 12 * time.Hour

// session is a native BMS login.
type session struct {
	username string
	tenant   string
	roles    []string
	expires  time.Time
}

// sessions is the in-memory session table, keyed by random id.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

// create stores s under a new random id and returns the id.
func (t *sessions) create(s *session) string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	id := base64.RawURLEncoding.EncodeToString(b[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*session{}
	}
	now := time.Now()
	for k, old := range t.m { // drop expired sessions as we go
		if now.After(old.expires) {
			delete(t.m, k)
		}
	}
	t.m[id] = s
	return id
}

// get returns the live session id, or nil.
func (t *sessions) get(id string) *session {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil {
		return nil
	}
	if time.Now().After(s.expires) {
		delete(t.m, id)
		return nil
	}
	return s
}

// delete ends session id.
func (t *sessions) delete(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, id)
}

// len reports the number of stored sessions (for tests).
func (t *sessions) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// sessionID returns the BMSSESSION cookie's value, or "".
func sessionID(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// setSessionCookie starts the native session id in the browser.
func setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    id,
		Path:     "/",
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}

// expireSessionCookie removes BMSSESSION from the browser.
func expireSessionCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}
