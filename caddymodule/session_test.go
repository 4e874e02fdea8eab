package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/sessioncookie"
)

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
	s := cookieShared(t)
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
	s := cookieShared(t)
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
	s := cookieShared(t)
	sess := newTestSession(time.Now().Add(time.Hour))
	sess.IDToken = strings.Repeat("x", 6000) // forces chunks
	req := roundTrip(t, s, sess)
	if n := len(req.Cookies()); n < 2 {
		t.Fatalf("a large session used %d cookie(s); want chunks", n)
	}
	for _, c := range req.Cookies() {
		if len(c.Value) > sessioncookie.ChunkSize+8 {
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
	sess.IDToken = strings.Repeat("y", sessioncookie.MaxLength)
	if err := s.writeSession(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), sess, false); err == nil {
		t.Fatal("an oversized session was written")
	}
}

func TestSecureCookieAttributes(t *testing.T) {
	s := cookieShared(t)
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
	old := cookieShared(t, strings.Repeat("o", 32))
	req := roundTrip(t, old, newTestSession(time.Now().Add(time.Hour)))
	rotated := cookieShared(t, strings.Repeat("n", 32), strings.Repeat("o", 32))
	if rotated.lookupSession(req, false, time.Now()) == nil {
		t.Fatal("old-secret cookie rejected after rotation")
	}
	if cookieShared(t, strings.Repeat("n", 32)).lookupSession(req, false, time.Now()) != nil {
		t.Fatal("cookie of a removed secret accepted")
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
	s := cookieShared(t)
	sess := newTestSession(time.Unix(1<<33, 0))
	if e := s.lookupSession(roundTrip(t, s, sess), false, time.Now()); e != nil {
		t.Errorf("a session expiring in %d was accepted", sess.Expires)
	}
	sess = newTestSession(time.Now().Add(time.Hour))
	if e := s.lookupSession(roundTrip(t, s, sess), false, time.Now()); e == nil || e.s.Expires() != sess.Expires || e.s.Issued() != sess.Issued {
		t.Errorf("a valid session did not keep its times: %+v", e)
	}
}

// earlierSessionCookie is a session cookie that k1sso wrote before its
// cookie code became package sessioncookie, under earlierSecret for the
// issuer https://k1.example and the client bms-proxy.
const earlierSessionCookie = "MTc5NjE2MzUyNnxXTUJYWDVFYmFhZlVmdUlsUWc4ekVrOUtoMWVIS1BDaDFTX1Fpcmt2ZHRVZWtBZ21LM2JzU21jYUdUWFBEdEtBQXNBYUhkbElINzRBbVV1YWNzYVlabVVGUVZsWm9UQW11X1RTVFNVSXVkcVVVMHpNUmpFU3pfendpVzN1Ujl6TUo5Y1ZGcWo1TF95Zm43SnRDcjFsOEFPLV9rdF9aa3hORldMcTdEWDRiTWZTS0NCeEFUWmFwRHJkYlhBaWdjMC01TVpTaVBPMVV6ZGxVeFlHRHVrMDYtLWRoai1HWDNic09xMHBZeHR5S1UzSUhsWXllNHR5dXBBT0FDWkZHN01VWWdyaVdQek50S25valJGczJObz18zkhx1_xb9JH1Dpe66K4gzHWPcTpY99uKf4DELWZopNw="

const earlierSecret = "0123456789abcdef0123456789abcdef"

// TestEarlierSessionCookieDecodes: an upgrade keeps every user signed in:
// a session cookie of the earlier code decodes with all its fields, and
// only for the deployment it was written for.
func TestEarlierSessionCookieDecodes(t *testing.T) {
	s := cookieShared(t, earlierSecret)
	s.cfg.issuer, s.cfg.clientID = "https://k1.example", "bms-proxy"
	s.codecs = newCookieCodecs(s.cfg)
	want := session{ID: "id-fixed", Subject: "k1|bob", Email: "bob@acme.example", Name: "Bob", SID: "sid-1", Company: "Acme", Tenant: "acme",
		IDToken: "h.p.s", AuthTime: 1799999000, Issued: 1800000000, K1Issued: 1799999990, Expires: 1800028800, Used: 1800000100}
	got, ok := s.decodeSession(earlierSessionCookie, time.Unix(want.Issued+60, 0))
	if !ok || *got != want {
		t.Fatalf("the earlier session cookie: %v %+v", ok, got)
	}
	s.cfg.clientID = "other-client"
	s.codecs = newCookieCodecs(s.cfg)
	if _, ok := s.decodeSession(earlierSessionCookie, time.Unix(want.Issued+60, 0)); ok {
		t.Fatal("the earlier session cookie decoded for another client")
	}
}
