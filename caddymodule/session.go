package caddymodule

import (
	"crypto/rand"
	"encoding/base64"
	"hash/maphash"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/sessioncookie"
)

// session is what the session cookie carries, encrypted and signed. Short
// JSON keys keep the cookie small.
type session struct {
	ID       string `json:"i"`             // random; the handle revocations use
	Subject  string `json:"s"`             // K1 sub
	Email    string `json:"e"`             // lower case, verified at K1
	Name     string `json:"n,omitempty"`   // display name
	SID      string `json:"sid,omitempty"` // K1 session id (logout)
	Company  string `json:"c,omitempty"`   // k1_company claim
	Tenant   string `json:"t,omitempty"`   // "" until the user picked one
	IDToken  string `json:"it,omitempty"`  // for id_token_hint at logout
	AuthTime int64  `json:"at,omitempty"`  // when the user authenticated at K1
	Issued   int64  `json:"ia"`            // unix seconds
	// K1Issued is the iat of the ID token (unix s, K1's clock): a logout of
	// the user at K1 is compared with it, not with an instance's clock.
	K1Issued int64 `json:"ki,omitempty"`
	Expires  int64 `json:"x"`           // unix seconds
	Used     int64 `json:"u,omitempty"` // last use, unix seconds (idle.go); 0: Issued

	k1Tokens *oauth2.Token // from the login, for the recheck (recheck.go); never in the cookie
}

// sessionEntry is a decoded session in the cache.
type sessionEntry struct {
	s       cachedSession
	derived atomic.Pointer[derived]
	recheck atomic.Int64  // next recheck (unix s), or recheckViaK1; see recheck.go
	used    atomic.Uint32 // last use seen here, unix seconds (idle.go)
	// reissued holds the cache keys of the latest re-issue (idle.go).
	reissued atomic.Pointer[reissueKeys]
}

// cachedSession is the part of a session that requests read, packed into
// two small allocations (this struct and one string holding the fields end
// to end): with 100,000 sessions cached, every byte here is 100 kB of heap.
// The ID token, name and company are not kept: logout and whoami decode the
// cookie again.
type cachedSession struct {
	text            string    // ID, SID, Subject, Email, Tenant
	ends            [5]uint16 // where each field ends in text
	issued, expires uint32    // unix seconds; decodeSession refuses others
	k1Issued        uint32    // the ID token's iat; 0: unknown
}

// newCachedSession packs a decoded session; ok is false when its fields
// do not fit (never for a cookie of at most sessioncookie.MaxChunks chunks).
func newCachedSession(s *session) (c cachedSession, ok bool) {
	fields := [5]string{s.ID, s.SID, s.Subject, s.Email, s.Tenant}
	var b strings.Builder
	for i, f := range fields {
		if b.Len()+len(f) > math.MaxUint16 {
			return c, false
		}
		b.WriteString(f)
		c.ends[i] = uint16(b.Len())
	}
	c.text = b.String()
	c.issued, c.expires = uint32(s.Issued), uint32(s.Expires)
	if s.K1Issued > 0 && s.K1Issued <= math.MaxUint32 {
		c.k1Issued = uint32(s.K1Issued)
	}
	return c, true
}

func (c *cachedSession) field(i int) string {
	start := uint16(0)
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.text[start:c.ends[i]]
}

// ID is the session's own random ID.
func (c *cachedSession) ID() string { return c.field(0) }

// SID is K1's session ID ("" without one).
func (c *cachedSession) SID() string { return c.field(1) }

// Subject is the K1 sub.
func (c *cachedSession) Subject() string { return c.field(2) }

// Email is the verified K1 email, lower case.
func (c *cachedSession) Email() string { return c.field(3) }

// Tenant is the BMS tenant ("" until the user picked one).
func (c *cachedSession) Tenant() string { return c.field(4) }

// Issued is when the session was created, in unix seconds.
func (c *cachedSession) Issued() int64 { return int64(c.issued) }

// K1Issued is when K1 issued the ID token of the session (K1's clock), or
// Issued when that is unknown.
func (c *cachedSession) K1Issued() int64 {
	if c.k1Issued == 0 {
		return c.Issued()
	}
	return int64(c.k1Issued)
}

// Expires is when the session ends, in unix seconds.
func (c *cachedSession) Expires() int64 { return int64(c.expires) }

// full is the session as far as the cache knows it.
func (c *cachedSession) full() *session {
	return &session{ID: c.ID(), SID: c.SID(), Subject: c.Subject(), Email: c.Email(), Tenant: c.Tenant(),
		Issued: c.Issued(), Expires: c.Expires(), K1Issued: int64(c.k1Issued)}
}

// randomID returns n random bytes, base64url-encoded.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// writeSession writes the session cookie (chunked when large).
func (s *shared) writeSession(w http.ResponseWriter, r *http.Request, sess *session, secure bool) error {
	v, err := s.codecs.session.Encode(sessionCookie, sess)
	if err != nil {
		return err
	}
	ttl := time.Until(time.Unix(sess.Expires, 0))
	return sessioncookie.WriteChunked(w, r, sessioncookie.Name(sessionCookie, secure), v, secure, ttl)
}

// clearSession drops the session cookie and its chunks.
func (s *shared) clearSession(w http.ResponseWriter, secure bool) {
	sessioncookie.ExpireChunked(w, sessioncookie.Name(sessionCookie, secure), secure)
}

// cacheSeeds key the hashes that find a cookie in the session cache; they
// are random per process and never leave it.
var cacheSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// cacheKey is the session cache key of a raw cookie: two 64-bit keyed
// hashes. It replaced SHA-256, which was half of k1sso's per-request CPU
// (see BENCHMARKS.md). Collision resistance is not needed: an entry exists
// only for a cookie that was decrypted and verified, and another cookie can
// reach it only by hitting its 128-bit key without knowing the seeds or the
// cookie (whoever knows the cookie already has the session). The cache is
// therefore never a way around the MAC.
type cacheKey [2]uint64

func keyOf(raw string) cacheKey {
	return cacheKey{maphash.String(cacheSeeds[0], raw), maphash.String(cacheSeeds[1], raw)}
}

// lookupSession returns the request's valid session, or nil. A cookie seen
// before is found in the cache by its keyed hash: no decryption, no MAC.
// Tampered, expired and undecodable cookies are all simply absent.
func (s *shared) lookupSession(r *http.Request, secure bool, now time.Time) *sessionEntry {
	raw := sessioncookie.ReadChunked(r, sessioncookie.Name(sessionCookie, secure))
	if raw == "" {
		return nil
	}
	key := keyOf(raw)
	if e, ok := s.sessions.Get(key); ok {
		if now.Unix() >= s.ends(e.s.Issued(), e.s.Expires()) {
			s.sessions.Remove(key)
			return nil
		}
		return e
	}
	sess, ok := s.decodeSession(raw, now)
	if !ok {
		return nil
	}
	c, ok := newCachedSession(sess)
	if !ok {
		return nil
	}
	e := &sessionEntry{s: c}
	e.used.Store(uint32(max(sess.Used, sess.Issued)))
	s.sessions.Add(key, e)
	return e
}

// ends is when a session issued and expiring at these times (unix s) ends:
// at its expiry, or earlier when session_lifetime is now shorter than it was
// at its login.
func (s *shared) ends(issued, expires int64) int64 {
	if l := s.lifetime.Load(); l > 0 {
		return min(expires, issued+l)
	}
	return expires
}

// decodeSession decrypts and checks a raw session cookie value.
func (s *shared) decodeSession(raw string, now time.Time) (*session, bool) {
	var sess session
	if err := s.codecs.session.Decode(sessionCookie, raw, &sess); err != nil {
		return nil, false
	}
	// The cache keeps the times as uint32; a session outside that range was
	// never written by k1sso.
	if sess.ID == "" || sess.Subject == "" || now.Unix() >= s.ends(sess.Issued, sess.Expires) || sess.Issued > now.Unix()+60 ||
		sess.Issued < 0 || sess.Expires > math.MaxUint32 {
		return nil, false
	}
	return &sess, true
}

// fullSession decodes the request's session including its ID token, for
// logout. It bypasses the cache on purpose.
func (s *shared) fullSession(r *http.Request, secure bool) *session {
	raw := sessioncookie.ReadChunked(r, sessioncookie.Name(sessionCookie, secure))
	if raw == "" {
		return nil
	}
	sess, ok := s.decodeSession(raw, s.now())
	if !ok {
		return nil
	}
	return sess
}
