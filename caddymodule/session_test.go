package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

func testShared(t *testing.T, secrets ...string) *shared {
	t.Helper()
	if len(secrets) == 0 {
		secrets = []string{strings.Repeat("k", 32)}
	}
	cfg := &config{}
	for _, s := range secrets {
		cfg.cookieKeys = append(cfg.cookieKeys, []byte(s))
	}
	cache, _ := lru.New[cacheKey, *sessionEntry](16)
	return &shared{cfg: cfg, codecs: newCookieCodecs(cfg), sessions: cache}
}

// roundTrip writes a session and returns a request that carries its cookies.
func roundTrip(t *testing.T, s *shared, sess *session) *http.Request {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := s.writeSession(rec, httptest.NewRequest("GET", "/", nil), sess, false); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge >= 0 {
			req.AddCookie(c)
		}
	}
	return req
}

func newTestSession(exp time.Time) *session {
	return &session{ID: "id1", Subject: "k1|bob", Email: "bob@acme.example", Tenant: "acme",
		Issued: time.Now().Unix(), Expires: exp.Unix()}
}

func TestSessionRoundTripAndCache(t *testing.T) {
	s := testShared(t)
	sess := newTestSession(time.Now().Add(time.Hour))
	sess.IDToken = "header.payload.signature"
	req := roundTrip(t, s, sess)
	now := time.Now()
	e := s.lookupSession(req, false, now)
	if e == nil || e.s.Email() != "bob@acme.example" || e.s.Tenant() != "acme" {
		t.Fatalf("lookup: %+v", e)
	}
	if e2 := s.lookupSession(req, false, now); e2 != e {
		t.Error("second lookup did not come from the cache")
	}
	if full := s.fullSession(req, false); full == nil || full.IDToken != sess.IDToken {
		t.Error("fullSession lost the ID token")
	}
}

func TestExpiredSessionIsAbsent(t *testing.T) {
	s := testShared(t)
	// Expired when written.
	if e := s.lookupSession(roundTrip(t, s, newTestSession(time.Now().Add(-time.Second))), false, time.Now()); e != nil {
		t.Fatal("an expired session cookie was accepted")
	}
	// Valid when cached, expired later: the cache must not keep it alive.
	req := roundTrip(t, s, newTestSession(time.Now().Add(time.Minute)))
	if s.lookupSession(req, false, time.Now()) == nil {
		t.Fatal("valid session not found")
	}
	if s.lookupSession(req, false, time.Now().Add(2*time.Minute)) != nil {
		t.Fatal("a cached session outlived its expiry")
	}
}

func TestChunkedSessionCookie(t *testing.T) {
	s := testShared(t)
	sess := newTestSession(time.Now().Add(time.Hour))
	sess.IDToken = strings.Repeat("x", 6000) // forces chunks
	req := roundTrip(t, s, sess)
	if n := len(req.Cookies()); n < 2 {
		t.Fatalf("a large session used %d cookie(s); want chunks", n)
	}
	for _, c := range req.Cookies() {
		if len(c.Value) > chunkSize+8 {
			t.Errorf("chunk %s is %d bytes", c.Name, len(c.Value))
		}
	}
	if full := s.fullSession(req, false); full == nil || full.IDToken != sess.IDToken {
		t.Fatal("chunked session did not reassemble")
	}
	// A missing chunk makes the session absent.
	broken := httptest.NewRequest("GET", "/", nil)
	for _, c := range req.Cookies() {
		if c.Name != "k1sso-1" {
			broken.AddCookie(c)
		}
	}
	if s.lookupSession(broken, false, time.Now()) != nil {
		t.Fatal("a session with a missing chunk was accepted")
	}
	// Too large for the chunk limit: refused at write time.
	sess.IDToken = strings.Repeat("y", chunkSize*maxSessionChunks)
	if err := s.writeSession(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), sess, false); err == nil {
		t.Fatal("an oversized session was written")
	}
}

func TestSecureCookieAttributes(t *testing.T) {
	s := testShared(t)
	rec := httptest.NewRecorder()
	if err := s.writeSession(rec, httptest.NewRequest("GET", "/", nil), newTestSession(time.Now().Add(time.Hour)), true); err != nil {
		t.Fatal(err)
	}
	c := rec.Result().Cookies()[0]
	if c.Name != "__Host-k1sso" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie attributes: %+v", c)
	}
}

func TestSessionRotationDecodesOldSecret(t *testing.T) {
	old := testShared(t, strings.Repeat("o", 32))
	req := roundTrip(t, old, newTestSession(time.Now().Add(time.Hour)))
	rotated := testShared(t, strings.Repeat("n", 32), strings.Repeat("o", 32))
	if rotated.lookupSession(req, false, time.Now()) == nil {
		t.Fatal("old-secret cookie rejected after rotation")
	}
	if testShared(t, strings.Repeat("n", 32)).lookupSession(req, false, time.Now()) != nil {
		t.Fatal("cookie of a removed secret accepted")
	}
}

func TestCookieValue(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Add("Cookie", "a=1; k1sso=first; k1sso-1=x")
	req.Header.Add("Cookie", "k1sso=second")
	if v := cookieValue(req, "k1sso"); v != "first" {
		t.Fatalf("cookieValue = %q", v)
	}
	if v := cookieValue(req, "k1ss"); v != "" {
		t.Fatalf("prefix matched: %q", v)
	}
}

func TestDropCookies(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a=1; k1sso=s; b=2", "a=1; b=2"},
		{"__Host-k1sso=s; __Host-k1sso-1=c; k1sso-login-abc=x; BMSSESSION=b", "BMSSESSION=b"},
		{"k1sso=s", ""},
		{"k1ssox=keep; notk1sso=keep", "k1ssox=keep; notk1sso=keep"},
		{"plain=1", "plain=1"},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", tc.in)
		dropCookies(req, nil)
		if got := req.Header.Get("Cookie"); got != tc.want {
			t.Errorf("%q: Cookie %q, want %q", tc.in, got, tc.want)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", "BMSSESSION=b; other=1")
	dropCookies(req, func(n string) bool { return n == "BMSSESSION" })
	if got := req.Header.Get("Cookie"); got != "other=1" {
		t.Errorf("extra: %q", got)
	}
}

// The cache packs a session's fields into one string; each must come back
// as it was, empty ones included.
func TestCachedSessionPacking(t *testing.T) {
	for _, sess := range []*session{
		{ID: "id1", SID: "sid-9", Subject: "k1|bob", Email: "bob@acme.example", Tenant: "acme", Issued: 1_700_000_000, Expires: 1_800_000_000},
		{ID: "id2", Subject: "s", Email: "e@x"}, // no SID, no tenant yet
		{ID: strings.Repeat("i", 300), SID: "", Subject: "ü|" + strings.Repeat("s", 1000), Email: "", Tenant: "t"},
	} {
		c, ok := newCachedSession(sess)
		if !ok {
			t.Fatalf("%+v: not packed", sess)
		}
		got := c.full()
		if *got != *sess {
			t.Errorf("packed and unpacked:\n got %+v\nwant %+v", got, sess)
		}
	}
	if _, ok := newCachedSession(&session{ID: "x", Subject: strings.Repeat("s", 70_000)}); ok {
		t.Error("fields over 64 KiB were packed")
	}
}

// Times beyond what the cache stores are never accepted.
func TestSessionTimesOutOfRange(t *testing.T) {
	s := testShared(t)
	sess := newTestSession(time.Unix(1<<33, 0))
	if e := s.lookupSession(roundTrip(t, s, sess), false, time.Now()); e != nil {
		t.Errorf("a session expiring in %d was accepted", sess.Expires)
	}
	sess = newTestSession(time.Now().Add(time.Hour))
	if e := s.lookupSession(roundTrip(t, s, sess), false, time.Now()); e == nil || e.s.Expires() != sess.Expires || e.s.Issued() != sess.Issued {
		t.Errorf("a valid session did not keep its times: %+v", e)
	}
}
