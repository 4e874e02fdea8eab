package caddymodule

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

func TestCanonicalPath(t *testing.T) {
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"/", true},
		{"/static/x.css", true},
		{"/static/", true},
		{"/a%20b", true},
		{"/caf%C3%A9", true},
		{"/a+b@c:d,e=f&g$h!i'j(k)l*m", true},
		{"/(S(abc))/default.aspx", true},
		{"/a%3Fb", true}, // an encoded ? is part of the name
		{"/x?q=../a;b//c", true},
		{"/a..b/.c/..d/.e.f", true},
		{"/logout.", false},
		{"/logout%20", false},
		{"/x./y", false},
		{"/x%20/y", false},
		{"/a%20b/", true},
		{"/...", false},
		{"/admin/../static/x", false},
		{"/static/..", false},
		{"/static/.", false},
		{"/./x", false},
		{"//x", false},
		{"/a//b", false},
		{"/a/b//", false},
		{"/static/..;/admin", false},
		{"/a;b", false},
		{"/a%3bb", false},
		{`/a\b`, false},
		{"/a%5Cb", false},
		{"/a%5cb", false},
		{"/a%2Fb", false},
		{"/a%2fb", false},
		{"/%2e%2e/x", false},
		{"/x%2Ecss", false},
		{"/%61dmin", false},
		{"/a%7Eb", false},
		{"/a%25b", false},
		{"/a%252e", false},
		{"/a%00b", false},
		{"/a%0Ab", false},
		{"/a%7Fb", false},
		{"/a%C0%AEb", false}, // overlong '.'
		{"/a%FFb", false},
		{"*", false},
		{"/static/..%EF%BC%8Fadmin", false},           // ／
		{"/static/x%EF%BC%BC..%EF%BC%BCadmin", false}, // ＼
		{"/static/%EF%BC%8E%EF%BC%8E/admin", false},   // ．．
		{"/a%C2%A5b", false},                          // ¥ (a \ in code page 932)
		{"/static/\uFF0F", false},
		{"/caf\u00e9/na\u00efve", true},
		{"/%E2%82%AC", true}, // €
	} {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			t.Fatalf("%s: %v", tc.target, err)
		}
		if got := canonicalPath(u); got != tc.ok {
			t.Errorf("canonicalPath(%q) = %v, want %v", tc.target, got, tc.ok)
		}
	}
	// A path set by a handler before k1sso (rewrite) without RawPath.
	if !canonicalPath(&url.URL{Path: "/a b/é"}) || canonicalPath(&url.URL{Path: "/a/../b"}) {
		t.Error("paths without RawPath")
	}
}

func TestPathMatcher(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		path     string
		want     bool
	}{
		{[]string{"/static/*"}, "/static/x.css", true},
		{[]string{"/static/*"}, "/static/", true},
		{[]string{"/static/*"}, "/static", false},
		{[]string{"/static/*"}, "/STATIC/x.css", false},
		{[]string{"/static/*"}, "/Static/x.css", false},
		{[]string{"/favicon.ico"}, "/favicon.ico", true},
		{[]string{"/favicon.ico"}, "/Favicon.ico", false},
		{[]string{"/favicon.ico"}, "/favicon.ico/", false},
		{[]string{"*.css"}, "/a/b.css", true},
		{[]string{"*.css"}, "/a/b.CSS", false},
		{[]string{"*/img/*"}, "/a/img/b", true},
		{[]string{"*/img/*"}, "/a/IMG/b", false},
		{[]string{"/docs/*/index.html"}, "/docs/v1/index.html", true},
		{[]string{"/docs/*/index.html"}, "/docs/v1/v2/index.html", false},
		{[]string{"/file[0-9].txt"}, "/file3.txt", true},
		{[]string{"/a%20b"}, "/a%20b", true},
		{[]string{"/a%20b"}, "/a%20c", false},
		{[]string{"/caf%C3%A9/*"}, "/caf%C3%A9/x", true}, // escaped patterns compare escaped
		{[]string{"*"}, "/anything", true},
		{[]string{"/x", "/y/*"}, "/y/z", true},
		{[]string{"/{env.K1SSO_TEST_PUBLIC}/*"}, "/pub/a", true},
		{nil, "/x", false},
	} {
		m, err := newPathMatcher(tc.patterns)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("K1SSO_TEST_PUBLIC", "pub")
		r := httptest.NewRequest(http.MethodGet, "http://x"+(&url.URL{Path: tc.path}).EscapedPath(), nil)
		if strings.Contains(tc.path, "%") {
			r.URL, _ = url.ParseRequestURI(tc.path)
		}
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		if got := m.match(r); got != tc.want {
			t.Errorf("%q on %q = %v, want %v", tc.patterns, tc.path, got, tc.want)
		}
	}
	if _, err := newPathMatcher([]string{"/a[b"}); err == nil || !strings.Contains(err.Error(), "/a[b") {
		t.Errorf("bad glob: %v", err)
	}
}

func TestIsLogoutPath(t *testing.T) {
	h := &Handler{}
	h.LogoutPath = "/logout"
	for p, want := range map[string]bool{
		"/logout": true, "/LogOut": true, "/LOGOUT/": true, "/logout/x": true,
		"/logoutx": false, "/logou": false, "/": false, "/x/logout": false,
	} {
		if got := h.isLogoutPath(p); got != want {
			t.Errorf("isLogoutPath(%q) = %v, want %v", p, got, want)
		}
	}
	h.LogoutPath = "/Account/LogOff/"
	if !h.isLogoutPath("/account/logoff") || h.isLogoutPath("/account") {
		t.Error("a logout_path with a trailing slash")
	}
	h.LogoutPath = "/"
	if !h.isLogoutPath("/") || h.isLogoutPath("/x") {
		t.Error("logout_path /")
	}
	h.LogoutPath = ""
	if h.isLogoutPath("/logout") {
		t.Error("no logout_path")
	}
}

func TestStripConnectionTokens(t *testing.T) {
	extra := map[string]string{"X-Remote-User": "{http.auth.user.id}"}
	for in, want := range map[string]string{
		"keep-alive":                             "keep-alive",
		"keep-alive, X-K1-Email, X-BMS-User":     "keep-alive",
		"X-K1-Assertion":                         "",
		"Upgrade, x_bms_tenant,X-Remote-User ,a": "Upgrade, a",
	} {
		hdr := http.Header{"Connection": {in}}
		stripIdentityHeaders(hdr, extra)
		if got := strings.Join(hdr["Connection"], "|"); got != want {
			t.Errorf("Connection %q became %q, want %q", in, got, want)
		}
	}
}

func TestTrailerGuard(t *testing.T) {
	h := &Handler{}
	h.Headers = map[string]string{"X-Remote-User": "{http.auth.user.id}"}
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("body"))
	r.Trailer = http.Header{"X-Sum": nil}
	if !h.stripIdentityTrailers(r) {
		t.Fatal("an ordinary declared trailer was refused")
	}
	// What net/http does at the end of the body: merge every trailer.
	r.Trailer["X-Sum"] = []string{"1"}
	r.Trailer["X-Bms-User"] = []string{"mallory"}
	r.Trailer["X_k1_email"] = []string{"m@evil.example"}
	r.Trailer["X-Remote-User"] = []string{"mallory"}
	if _, err := io.ReadAll(r.Body); err != nil {
		t.Fatal(err)
	}
	if len(r.Trailer) != 1 || r.Trailer.Get("X-Sum") != "1" {
		t.Errorf("trailers after the body: %v", r.Trailer)
	}
	for _, name := range []string{"X-BMS-User", "x-k1-assertion", "X_BMS_Tenant", "x-remote-user"} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("body"))
		r.Trailer = http.Header{name: nil}
		if h.stripIdentityTrailers(r) {
			t.Errorf("declared trailer %s accepted", name)
		}
	}
}

func TestDropOwnCookiesAsNetHTTPReadsThem(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "a=1; k1sso =s; __Host-k1sso-1\t=c; BMSSESSION=b")
	dropCookies(r, nil)
	if got := r.Header.Get("Cookie"); got != "a=1; BMSSESSION=b" {
		t.Errorf("Cookie %q", got)
	}
	for _, c := range r.Cookies() {
		if isOwnCookie(c.Name) {
			t.Errorf("net/http still reads %s", c.Name)
		}
	}
}
