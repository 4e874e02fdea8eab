package caddymodule

import (
	"net/http/httptest"
	"testing"
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
		if got := cookieValue(r, name); got != tt.want {
			t.Errorf("Cookie %q: got %q, want %q", tt.header, got, tt.want)
		}
		sameAsNetHTTP(t, tt.header, name)
	}
	// Chunks are read the same way.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "__Host-k1sso=2.ab; \u2000__Host-k1sso-1=cd")
	if got := readChunked(r, name); got != "" {
		t.Errorf("a chunk under a look-alike name was used: %q", got)
	}
	r.Header.Set("Cookie", "__Host-k1sso=2.ab; \u2000__Host-k1sso-1=xx; __Host-k1sso-1=cd")
	if got := readChunked(r, name); got != "abcd" {
		t.Errorf("chunks: got %q, want abcd", got)
	}
}

// sameAsNetHTTP checks cookieValue against net/http's Request.Cookie: the
// same cookie, except that cookieValue does not check values and so may
// return one net/http refuses (which no decoder accepts either), never a
// valid value net/http would not have returned.
func sameAsNetHTTP(t *testing.T, header, name string) {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", header)
	got := cookieValue(r, name)
	want := ""
	if c, err := r.Cookie(name); err == nil {
		want = c.Value
	}
	if got != want && validCookieValue(got) {
		t.Errorf("Cookie %q: cookieValue %q, net/http %q", header, got, want)
	}
}

// validCookieValue is net/http's rule for a cookie value (quotes removed).
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// FuzzCookieValue: for any Cookie header, cookieValue agrees with net/http
// as sameAsNetHTTP says.
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
