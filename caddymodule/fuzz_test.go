package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/k1sso/k1sso/sessioncookie"
)

// Test hooks for the tests of package caddymodule_test. Each restores the
// old value when the test ends.

// SetJWKSMinRefetch shortens the JWKS refetch interval.
func SetJWKSMinRefetch(tb testing.TB, d time.Duration) { setTunable(tb, jwksMinRefetch, d) }

// SetK1Timeout shortens the timeout of calls to K1.
func SetK1Timeout(tb testing.TB, d time.Duration) { setTunable(tb, k1Timeout, d) }

// SetDiscoveryBackoff shortens the discovery retry backoff.
func SetDiscoveryBackoff(tb testing.TB, lo, hi time.Duration) {
	setTunable(tb, minBackoff, lo)
	setTunable(tb, maxBackoff, hi)
}

// fuzzShared is cookieShared with the login options the callback reads.
func fuzzShared(tb testing.TB) *shared {
	s := cookieShared(tb, "fuzz-cookie-secret-0123456789abcdef")
	s.cfg.loginTimeout, s.cfg.landingPage = 10*time.Minute, "/"
	return s
}

// FuzzSessionCookie: any Cookie header decodes to a valid session or to
// none, without panicking; a valid session is never accepted when expired.
func FuzzSessionCookie(f *testing.F) {
	s := fuzzShared(f)
	now := time.Unix(1_800_000_000, 0)
	good, _ := securecookie.EncodeMulti(sessionCookie, &session{ID: "i", Subject: "k1|bob", Email: "bob@acme.example", Tenant: "acme", Issued: now.Unix(), Expires: now.Unix() + 3600}, s.codecs.session...)
	f.Add("k1sso=" + good)
	f.Add("k1sso=2." + good[:10] + "; k1sso-1=" + good[10:])
	f.Add("k1sso=5.a; k1sso-1=b; k1sso-2=c; k1sso-3=d; k1sso-4=e")
	f.Add("k1sso=\"\"; k1sso=x")
	f.Add("k1sso=99.; k1sso-1=")
	f.Fuzz(func(t *testing.T, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", cookie)
		raw := sessioncookie.ReadChunked(r, sessionCookie)
		if raw == "" {
			return
		}
		sess, ok := s.decodeSession(raw, now)
		if ok && (sess.ID == "" || sess.Subject == "" || now.Unix() >= sess.Expires) {
			t.Fatalf("accepted an invalid session %+v", sess)
		}
	})
}

// FuzzCallbackState: the login-state lookup of a callback accepts only a
// cookie whose signed state equals the query's state.
func FuzzCallbackState(f *testing.F) {
	s := fuzzShared(f)
	h := &Handler{cfg: s.cfg, shared: s}
	st := loginState{State: "abcdefghijklmnopqrstuvwxyz", Nonce: "n", Verifier: "v", RD: "/", Issued: time.Now().Unix()}
	v, _ := securecookie.EncodeMulti(loginCookiePre, &st, s.codecs.login...)
	f.Add("state=abcdefghijklmnopqrstuvwxyz&code=c", "k1sso-login-abcdefghijkl="+v)
	f.Add("state=abcdefghijklXXXX&code=c", "k1sso-login-abcdefghijkl="+v)
	f.Add("state=%00%00%00%00%00%00%00%00%00%00%00%00", "")
	f.Add("state=;;;;;;;;;;;;;;&state=x", "k1sso-login-;;;;;;;;;;;;=a")
	f.Fuzz(func(t *testing.T, query, cookie string) {
		r := httptest.NewRequest(http.MethodGet, "/.k1sso/callback", nil)
		r.URL.RawQuery = query
		r.Header.Set("Cookie", cookie)
		state := r.URL.Query().Get("state")
		got, err := h.loginStateFor(r, state, false)
		if err == nil && got.State != state {
			t.Fatalf("state %q matched a cookie of state %q", state, got.State)
		}
		if err != nil {
			var lf *loginFailure
			if !errors.As(err, &lf) || lf.status != http.StatusBadRequest {
				t.Fatalf("refusal is not a 400: %v", err)
			}
		}
	})
}

// checkLocal is the property of every redirect target: a path a browser
// resolves on the same origin.
func checkLocal(t *testing.T, in, out string) {
	t.Helper()
	if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") || strings.HasPrefix(out, "/\\") || strings.ContainsRune(out, '\\') {
		t.Fatalf("%q -> %q: not a local path", in, out)
	}
	for _, c := range []byte(out) {
		if c < 0x20 || c == 0x7f {
			t.Fatalf("%q -> %q: control character", in, out)
		}
	}
	base, _ := url.Parse("https://bms.example.com/a/b")
	ref, err := url.Parse(out)
	if err != nil {
		t.Fatalf("%q -> %q: %v", in, out, err)
	}
	if u := base.ResolveReference(ref); u.Host != base.Host || u.Scheme != base.Scheme || u.User != nil {
		t.Fatalf("%q -> %q resolves to %s", in, out, u)
	}
	if again, ok := localTarget(out); !ok || again != out {
		t.Fatalf("%q -> %q is not stable (%q, %v)", in, out, again, ok)
	}
}

// FuzzLocalTarget: rd values become local paths or are refused.
func FuzzLocalTarget(f *testing.F) {
	for _, s := range []string{"/", "/dashboard?x=1", "//evil.com", "/\\evil.com", "/..//evil.com", "/%2F%2Fevil", "/a/../../b", "/./\\x", "/\t/evil", "/a?b=//c", "/%5C%5Cevil", "/;//evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if out, ok := localTarget(raw); ok {
			checkLocal(t, raw, out)
		}
	})
}

// FuzzInsideExternal: target_link_uri values inside external_url become
// local paths; anything else is refused.
func FuzzInsideExternal(f *testing.F) {
	ext, _ := url.Parse("https://bms.example.com")
	h := &Handler{cfg: &config{external: ext, landingPage: "/"}}
	for _, s := range []string{"https://bms.example.com/x", "https://bms.example.com:443//evil", "https://BMS.example.com", "https://bms.example.com@evil.com/", "http://bms.example.com/", "//bms.example.com/x", "https://bms.example.com/%2F%2Fevil", "https:bms.example.com/x", "https://bms.example.com\\@evil.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "https://bms.example.com/.k1sso/initiate", nil)
		if out, ok := h.insideExternal(h.originOf(r), raw); ok {
			checkLocal(t, raw, out)
		}
	})
}

// FuzzParseUsers: the users CSV never panics, and every error names a line.
func FuzzParseUsers(f *testing.F) {
	f.Add("email,bms_user,tenant,tenant_name,roles\nbob@acme.example,bob,acme,Acme,\n")
	f.Add("email,bms_user,tenant,tenant_name,roles\na@b,c,d,e,f;g\na@b,c,d,e,f\n")
	f.Add("\ufeffemail,bms_user,tenant,tenant_name,roles\n\"a@b\nc\",x,y,z,\n")
	f.Add("")
	f.Add("email,bms_user\n")
	f.Fuzz(func(t *testing.T, csv string) {
		_, err := parseUsers(strings.NewReader(csv), 1)
		if err != nil && !lineErr.MatchString(err.Error()) {
			t.Fatalf("error names no line: %v", err)
		}
	})
}

var lineErr = regexp.MustCompile(`^line [0-9]+: `)

// FuzzAssertionPayload: whatever the claims hold, the assertion payload is
// valid JSON and each string decodes to what encoding/json gives for it, so
// the token rebuilt per request always says what was signed.
func FuzzAssertionPayload(f *testing.F) {
	f.Add("k1|bob", "bob@acme.example", "bob", "admin", int64(1800000000))
	f.Add("q\"\\", "\x00\x1f\x7f", "\xff\xfe", "\u2028\U0001d11e", int64(-1))
	f.Fuzz(func(t *testing.T, sub, email, user, role string, iat int64) {
		acc := &account{BMSUser: user, Tenant: role, Roles: []string{role}}
		got := appendAssertionPayload(nil, "https://bms.example", sub, email, acc, iat, iat+300)
		var c struct {
			Sub, Email, BMSUser string
			Iat, Exp            int64
			Roles               []string
		}
		if err := json.Unmarshal(got, &c); err != nil {
			t.Fatalf("invalid JSON %q: %v", got, err)
		}
		norm := func(s string) string {
			b, _ := json.Marshal(s)
			var v string
			_ = json.Unmarshal(b, &v)
			return v
		}
		if c.Sub != norm(sub) || c.Email != norm(email) || len(c.Roles) != 1 || c.Roles[0] != norm(role) || c.Iat != iat || c.Exp != iat+300 {
			t.Fatalf("payload %q does not hold the claims", got)
		}
		var u struct {
			BMSUser string `json:"bms_user"`
		}
		_ = json.Unmarshal(got, &u)
		if u.BMSUser != norm(user) {
			t.Fatalf("bms_user %q, want %q", u.BMSUser, norm(user))
		}
	})
}
