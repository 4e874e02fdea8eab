package caddymodule

import (
	"net/http/httptest"
	"testing"
)

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
