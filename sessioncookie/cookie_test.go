package sessioncookie

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestCookieValueExactName: a cookie is found only under its exact name as
// net/http parses Cookie headers (ASCII spaces around it, a valid token);
// look-alikes with other spaces are neither taken nor allowed to hide the
// real cookie.
func TestCookieValueExactName(t *testing.T) {
	const name = "__Host-k1sso"
	for _, tt := range []struct{ header, want string }{
		{"__Host-k1sso=v", "v"},
		{"other=1; __Host-k1sso=v", "v"},
		{"other=1;__Host-k1sso=v", "v"},
		{"other=1;\t__Host-k1sso=v ", "v"},
		{`__Host-k1sso="v"`, "v"},
		{"__Host-k1sso=", ""},
		{"__host-k1sso=v", ""},
		{"Host-k1sso=v", ""},
		{"__Host-k1ssox=v", ""},
		{"other=1; \u2000__Host-k1sso=v", ""},
		{"other=1; \u00a0__Host-k1sso=v", ""},
		{"other=1; \u3000__Host-k1sso=v", ""},
		{"other=1; \u0085__Host-k1sso=v", ""},
		{"other=1; \ufeff__Host-k1sso=v", ""},
		{"other=1; \u200b__Host-k1sso=v", ""},
		{"other=1; __Host-k1sso\u00a0=v", ""},
		{"other=1; \v__Host-k1sso=v", ""},
		{"\u2000__Host-k1sso=planted; __Host-k1sso=real", "real"},
		{"\u00a0__Host-k1sso=planted;__Host-k1sso=real", "real"},
		{"__Host-k1sso = v", " v"},
		{"__Host-k1sso", ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", tt.header)
		if got := Value(r, name); got != tt.want {
			t.Errorf("Cookie %q: got %q, want %q", tt.header, got, tt.want)
		}
		sameAsNetHTTP(t, tt.header, name)
	}
	// Chunks are read the same way.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-k1sso=2.ab; \u2000__Host-k1sso-1=cd")
	if got := ReadChunked(r, name); got != "" {
		t.Errorf("a chunk under a look-alike name was used: %q", got)
	}
	r.Header.Set("Cookie", "__Host-k1sso=2.ab; \u2000__Host-k1sso-1=xx; __Host-k1sso-1=cd")
	if got := ReadChunked(r, name); got != "abcd" {
		t.Errorf("chunks: got %q, want abcd", got)
	}
}

// TestCookieValue: the first cookie of the name wins, across Cookie lines,
// and a name is never matched by its prefix.
func TestCookieValue(t *testing.T) {
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Add("Cookie", "a=1; k1sso=first; k1sso-1=x")
	req.Header.Add("Cookie", "k1sso=second")
	if v := Value(req, "k1sso"); v != "first" {
		t.Fatalf("Value = %q", v)
	}
	if v := Value(req, "k1ss"); v != "" {
		t.Fatalf("prefix matched: %q", v)
	}
	if v := Value(httptest.NewRequest("GET", "/", nil), "k1sso"); v != "" {
		t.Fatalf("no Cookie header: %q", v)
	}
	// net/http takes no cookie whose name is not a token, so neither may
	// Value, whatever name it is asked for.
	for _, name := range []string{"_@Host-k1sso", "k1sso login", "k1sso;", "k1sso\u00e9", ""} {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Cookie", name+"=v; a=1")
		if v := Value(req, name); v != "" {
			t.Errorf("the name %q, which is no token: %q", name, v)
		}
		sameAsNetHTTP(t, name+"=v; a=1", name)
	}
}

// sameAsNetHTTP checks Value against net/http's Request.Cookie: the same
// cookie, except that Value does not check values and so may return one
// net/http refuses (which no decoder accepts either), never a valid value
// net/http would not have returned.
func sameAsNetHTTP(t *testing.T, header, name string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", header)
	got := Value(r, name)
	want := ""
	if c, err := r.Cookie(name); err == nil {
		want = c.Value
	}
	if got != want && validCookieValue(got) {
		t.Errorf("Cookie %q: Value %q, net/http %q", header, got, want)
	}
}

// validHeaderValue is what a client can send in a header value: no control
// characters.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// FuzzCookieValue: for any Cookie header, Value agrees with net/http as
// sameAsNetHTTP says.
func FuzzCookieValue(f *testing.F) {
	for _, s := range []string{"a=1; __Host-k1sso=v", "\u2000__Host-k1sso=x; __Host-k1sso=y", "__Host-k1sso=\"q\"",
		"__Host-k1sso=a\\b; __Host-k1sso=c", " \t__Host-k1sso\t=\tv ;", "k1sso=1;k1sso=2"} {
		f.Add(s, "__Host-k1sso")
	}
	f.Fuzz(func(t *testing.T, header, name string) {
		if !validHeaderValue(header) || name == "" {
			return // not a header a client can send; Cookie("") is always absent
		}
		sameAsNetHTTP(t, header, name)
	})
}

// TestNameHostPrefix: only Secure cookies get the __Host- prefix, which
// browsers refuse on plain http.
func TestNameHostPrefix(t *testing.T) {
	if got := Name("k1sso", true); got != "__Host-k1sso" {
		t.Errorf("secure: %q", got)
	}
	if got := Name("k1sso", false); got != "k1sso" {
		t.Errorf("plain: %q", got)
	}
}

// TestNewAttributes: every cookie is HttpOnly, Lax and for the whole
// origin without a Domain (what __Host- demands), Secure when asked, and
// maxAge sets, deletes or leaves out its lifetime.
func TestNewAttributes(t *testing.T) {
	for _, tt := range []struct {
		maxAge    time.Duration
		wantAge   int
		wantUntil bool
	}{{time.Hour, 3600, true}, {-1, -1, false}, {0, 0, false}} {
		for _, secure := range []bool{true, false} {
			before := time.Now()
			c := New(Name("n", secure), "v", secure, tt.maxAge)
			if c.Value != "v" || c.Secure != secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
				t.Errorf("maxAge %v secure %v: attributes %+v", tt.maxAge, secure, c)
			}
			if c.MaxAge != tt.wantAge {
				t.Errorf("maxAge %v: Max-Age %d, want %d", tt.maxAge, c.MaxAge, tt.wantAge)
			}
			if tt.wantUntil != !c.Expires.IsZero() || (tt.wantUntil && c.Expires.Before(before.Add(tt.maxAge))) {
				t.Errorf("maxAge %v: Expires %v", tt.maxAge, c.Expires)
			}
			if err := c.Valid(); err != nil {
				t.Errorf("an invalid cookie: %v", err)
			}
		}
	}
	rec := httptest.NewRecorder()
	Expire(rec, "__Host-n", true)
	cs := rec.Result().Cookies()
	if len(cs) != 1 || cs[0].Name != "__Host-n" || cs[0].MaxAge != -1 || !cs[0].Secure || cs[0].Path != "/" {
		t.Errorf("Expire: %+v", cs)
	}
}
