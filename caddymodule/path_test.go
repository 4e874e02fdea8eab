package caddymodule_test

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// rawDo sends one HTTP/1.1 request exactly as written (the request line's
// target is not cleaned or escaped by any client) and returns the answer.
// head holds extra header lines, body a raw (e.g. chunked) body.
func rawDo(t *testing.T, base, method, target string, head []string, body string) (*http.Response, string) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, u.Host)
	for _, h := range head {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp, string(rb)
}

// where is the Location of resp without its query (which may hold an ID
// token), for test messages.
func where(resp *http.Response) string {
	loc, _, _ := strings.Cut(resp.Header.Get("Location"), "?")
	return loc
}

// nonCanonical are request targets whose path is not in clean canonical
// form; servers behind the proxy resolve them in different ways.
var nonCanonical = []string{
	"/static/..;/admin",           // Tomcat, Jetty, Spring drop ;params
	"/static/x%5C..%5C..%5Cadmin", // IIS and http.sys: \ separates
	`/static/x\..\..\admin`,       // the same, unencoded
	"/admin/../static/x",          // dot segments
	"/admin%2F..%2Fstatic/x",      // encoded /
	"/static/%2e%2e/admin",        // encoded .
	"/static/.%2E/admin",          // half encoded .
	"/static//../admin",           // double slash
	"/static/./x",                 // single dot
	"/static/x/.",                 // trailing dot segment
	"/static/x;jsessionid=1",      // ;params
	"/static/%252e%252e/admin",    // double-encoded: servers that decode twice
	"/static/x%00.css",            // encoded NUL
	"/static/%61dmin",             // needless encoding
	"/admin%3B/static/x",          // encoded ;
	"/static/x%C0%AE%C0%AE/admin", // overlong UTF-8 for ..
}

// TestPathEnforceCanonical: in enforce mode, none of the path tricks that
// make the proxy's decision and the upstream's reading differ reaches the
// upstream without a session; canonical paths still work.
func TestPathEnforceCanonical(t *testing.T) {
	w := newWorld(t, "enforce", "public /static/*")
	try := func(target string) {
		t.Helper()
		w.up.Reset()
		// As a browser loads a page: only navigations are sent to login.
		resp, b := rawDo(t, w.px.URL, http.MethodGet, target, []string{"Accept: text/html"}, "")
		if n := len(w.up.Requests()); n != 0 {
			t.Errorf("%s reached the upstream without a session (%d, %d requests)", target, resp.StatusCode, n)
			return
		}
		switch {
		case resp.StatusCode == http.StatusBadRequest && strings.Contains(b, "<html"):
		case resp.StatusCode == http.StatusFound && strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login"):
		default:
			t.Errorf("%s: %d %q, want a 400 page or a redirect to login", target, resp.StatusCode, where(resp))
		}
	}
	for _, target := range nonCanonical {
		try(target)
	}
	// Canonical, but not what public says: public is case-sensitive.
	try("/STATIC/x")
	try("/Static/x")
	try("/login/../admin")

	// Canonical public paths, login_path and query strings reach it.
	for _, target := range []string{"/static/x", "/static/a%20b.css", "/static/x?a=../b;c", "/login", "/static/%E2%82%AC"} {
		w.up.Reset()
		resp, _ := rawDo(t, w.px.URL, http.MethodGet, target, nil, "")
		if resp.StatusCode != http.StatusOK || len(w.up.Requests()) != 1 {
			t.Errorf("%s: %d, want the upstream's 200", target, resp.StatusCode)
		}
	}

	// Without any public pattern: the login page is the only way in.
	w.s.Options = []string{"enforce"}
	w.reload(t)
	for _, target := range []string{"/admin/../login", "/admin/..;/login", "/LOGIN", "/login/", "/login/."} {
		try(target)
	}
	// Optional mode refuses the same forms: the logout and the login page
	// depend on the path too.
	w.s.Options = nil
	w.reload(t)
	for _, target := range nonCanonical {
		w.up.Reset()
		resp, _ := rawDo(t, w.px.URL, http.MethodGet, target, nil, "")
		if resp.StatusCode != http.StatusBadRequest || len(w.up.Requests()) != 0 {
			t.Errorf("optional mode: %s: %d, want 400 and nothing forwarded", target, resp.StatusCode)
		}
	}
}

// TestLogoutPathForms: a logout_path in any non-canonical form is never
// forwarded with identity; letter case and a trailing slash still log out.
func TestLogoutPathForms(t *testing.T) {
	w := newWorld(t, "logout_path /logout")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	cookie := "k1sso=" + cookieOf(c, w.px.URL, "k1sso")
	for _, target := range []string{"/logout;x", "/logout/.", "/x/../logout", "/logout%2F", "/%6Cogout", "/logout/..;/logout", `/x\..\logout`, "/logout.", "/logout%20", "/LOGOUT;"} {
		w.up.Reset()
		resp, _ := rawDo(t, w.px.URL, http.MethodGet, target, []string{"Cookie: " + cookie}, "")
		for _, s := range w.up.Requests() {
			if s.Header.Get("X-BMS-User") != "" {
				t.Errorf("%s went upstream with identity (%d)", target, resp.StatusCode)
			}
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", target, resp.StatusCode)
		}
	}
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("a refused logout form ended the session")
	}
	// BMS ignores case and a trailing slash, so these are its logout too.
	for _, target := range []string{"/LogOut", "/logout/"} {
		c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
		w.up.Reset()
		resp, _ := rawDo(t, w.px.URL, http.MethodGet, target, []string{"Cookie: k1sso=" + cookieOf(c, w.px.URL, "k1sso")}, "")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL+"/end_session?") {
			t.Errorf("%s: %d %q, want a global logout", target, resp.StatusCode, where(resp))
		}
		if ups := w.up.Requests(); len(ups) != 1 || ups[0].Path != target || ups[0].Header.Get("X-BMS-User") != "bob" {
			t.Errorf("%s: BMS did not get its logout as bob: %d requests", target, len(ups))
		}
	}
}

// TestLogoutPathCrossSite: another site cannot end the session through
// logout_path; it gets the sign-out confirmation. Same-origin navigations,
// typed URLs and clients without Fetch Metadata or a foreign Referer log
// out at once.
func TestLogoutPathCrossSite(t *testing.T) {
	w := newWorld(t, "logout_path /logout")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	nr := testenv.NoRedirect(c.Jar)
	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Sec-Fetch-Site", "cross-site", "Referer", w.px.URL + "/x"},
		{"Referer", "https://evil.example/x"},
		{"Origin", "https://evil.example"},
		{"Referer", "http://localhost:1/x"},
	} {
		w.up.Reset()
		resp := get(t, nr, w.px.URL+"/logout", hdr...)
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, `action="/.k1sso/logout?then=bms"`) || !strings.Contains(b, `name="csrf_token"`) {
			t.Errorf("%v: %d, want the sign-out confirmation", hdr, resp.StatusCode) // b may hold tokens: not logged
		}
		if len(w.up.Requests()) != 0 || len(resp.Header["Set-Cookie"]) != 0 {
			t.Errorf("%v: the logout went on (%d upstream requests, %d Set-Cookie)", hdr, len(w.up.Requests()), len(resp.Header["Set-Cookie"]))
		}
	}
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("a cross-site logout ended the session")
	}
	// A cross-site POST is refused too.
	req, _ := http.NewRequest(http.MethodPost, w.px.URL+"/logout", strings.NewReader("a=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := nr.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, `action="/.k1sso/logout?then=bms"`) {
		t.Errorf("cross-site POST: %d", resp.StatusCode)
	}

	// The confirmation's button goes through logout_path again, now from
	// this origin, so BMS's logout runs too.
	resp = get(t, nr, w.px.URL+"/logout", "Sec-Fetch-Site", "cross-site")
	form := k1devtest.FindForm([]byte(body(t, resp)), "csrf_token")
	if form == nil {
		t.Fatal("no confirmation form")
	}
	action, _ := url.Parse(w.px.URL + html.UnescapeString(form.Action()))
	req, _ = http.NewRequest(http.MethodPost, action.String(), strings.NewReader(form.Fields().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if resp, err = nr.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/logout" {
		t.Fatalf("confirmed: %d %q, want 303 to /logout", resp.StatusCode, where(resp))
	}
	w.up.Reset()
	resp = get(t, nr, w.px.URL+"/logout", "Sec-Fetch-Site", "same-origin", "Referer", w.px.URL+action.RequestURI())
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL+"/end_session?") || len(w.up.Requests()) != 1 {
		t.Errorf("after the confirmation: %d %q, %d BMS requests; want a global logout through BMS", resp.StatusCode, where(resp), len(w.up.Requests()))
	}

	for _, hdr := range [][]string{
		{"Sec-Fetch-Site", "same-origin"},
		{"Sec-Fetch-Site", "none"},
		{"Referer", w.px.URL + "/dashboard"},
		{"Origin", w.px.URL},
		nil,
	} {
		c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
		w.up.Reset()
		resp := get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/logout", hdr...)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL+"/end_session?") {
			t.Errorf("%v: %d %q, want a global logout", hdr, resp.StatusCode, where(resp))
		}
		if len(w.up.Requests()) != 1 {
			t.Errorf("%v: BMS got %d logout requests, want 1", hdr, len(w.up.Requests()))
		}
	}
}

// TestTrailersNeverCarryIdentity: identity headers sent as request
// trailers, declared or not, never reach the upstream, with or without a
// session; other trailers still do.
func TestTrailersNeverCarryIdentity(t *testing.T) {
	w := newWorld(t, "header X-Remote-User {http.auth.user.id}")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	cookie := "Cookie: k1sso=" + cookieOf(c, w.px.URL, "k1sso")
	chunked := func(trailers ...string) string {
		return "5\r\nhello\r\n0\r\n" + strings.Join(trailers, "\r\n") + "\r\n\r\n"
	}
	forged := []string{"X-BMS-User: mallory", "X-K1-Email: mallory@evil.example", "x_k1_assertion: forged", "X-Remote-User: mallory", "X-Other: kept"}
	cases := []struct {
		name    string
		declare string
	}{
		{"declared", "Trailer: X-BMS-User, X-K1-Email, x_k1_assertion, X-Remote-User, X-Other"},
		{"only X-Other declared", "Trailer: X-Other"},
		{"undeclared", ""},
	}
	for _, session := range []bool{false, true} {
		for _, tc := range cases {
			w.up.Reset()
			head := []string{"Transfer-Encoding: chunked", "Content-Type: text/plain"}
			if tc.declare != "" {
				head = append(head, tc.declare)
			}
			if session {
				head = append(head, cookie)
			}
			resp, _ := rawDo(t, w.px.URL, http.MethodPost, "/upload", head, chunked(forged...))
			for _, s := range w.up.Requests() {
				for k, v := range s.Trailer {
					if identityLike(k) || strings.EqualFold(k, "X-Remote-User") {
						t.Errorf("session %v, %s: the upstream got trailer %s: %q", session, tc.name, k, v)
					}
				}
				if tc.name == "only X-Other declared" && s.Trailer.Get("X-Other") != "kept" {
					t.Errorf("session %v, %s: an ordinary trailer was lost: %v", session, tc.name, s.Trailer)
				}
			}
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
				t.Errorf("session %v, %s: %d, want 200 or 400", session, tc.name, resp.StatusCode)
			}
		}
	}
	// An ordinary trailer on its own still reaches the upstream.
	w.up.Reset()
	resp, _ := rawDo(t, w.px.URL, http.MethodPost, "/upload", []string{"Transfer-Encoding: chunked", "Trailer: X-Checksum", cookie}, chunked("X-Checksum: 5"))
	if ups := w.up.Requests(); resp.StatusCode != http.StatusOK || len(ups) != 1 || ups[0].Trailer.Get("X-Checksum") != "5" || ups[0].Header.Get("X-BMS-User") != "bob" {
		t.Errorf("ordinary trailer: %d, %d upstream requests", resp.StatusCode, len(ups))
	}
}

// TestConnectionCannotDropIdentity: a client naming identity headers in
// its Connection header does not make the proxy remove them.
func TestConnectionCannotDropIdentity(t *testing.T) {
	w := newWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	for _, conn := range []string{
		"keep-alive, X-K1-Email, X-K1-Assertion, X-BMS-User",
		"X-Bms-Tenant,x-bms-roles ,  X_K1_Subject",
	} {
		s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/dashboard", "Connection", conn))
		for _, k := range []string{"X-K1-Email", "X-K1-Subject", "X-BMS-User", "X-BMS-Tenant", "X-K1-Assertion"} {
			if s.Header.Get(k) == "" {
				t.Errorf("Connection %q removed %s", conn, k)
			}
		}
		if _, ok := s.Header["X-Bms-Roles"]; !ok {
			t.Errorf("Connection %q removed X-BMS-Roles", conn)
		}
	}
}

// TestCaddyDirectivesSeeIdentity: Caddy's request_header, header_up and
// {http.request.header.*} work on the identity headers like on any other.
func TestCaddyDirectivesSeeIdentity(t *testing.T) {
	up := testenv.NewUpstream(t)
	w := newWorld(t)
	w.s.Extra = "\trequest_header -X-BMS-Tenant\n\treverse_proxy /seen/* " + strings.TrimPrefix(up.URL, "http://") +
		" {\n\t\theader_up X-Seen {http.request.header.X-BMS-User}\n\t}\n"
	w.reload(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/seen/x"))
	if s.Header.Get("X-Seen") != "bob" {
		t.Errorf("header_up {http.request.header.X-BMS-User} gave %q, want bob", s.Header.Get("X-Seen"))
	}
	if s.Header.Get("X-BMS-User") != "bob" {
		t.Errorf("X-BMS-User %q", s.Header.Get("X-BMS-User"))
	}
	for _, s := range append(w.up.Requests(), up.Requests()...) {
		if _, ok := s.Header["X-Bms-Tenant"]; ok {
			t.Errorf("request_header -X-BMS-Tenant left it in place at %s", s.Path)
		}
	}
}

// TestPlaceholdersNeverSeeOwnCookies: the header option's placeholders
// are expanded after k1sso's own cookies are gone from the request.
func TestPlaceholdersNeverSeeOwnCookies(t *testing.T) {
	w := newWorld(t, "header X-Sess {http.request.cookie.k1sso}", "header X-Cookies {http.request.header.Cookie}")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	u, _ := url.Parse(w.px.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "BMSSESSION", Value: "native", Path: "/"}})
	s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/dashboard"))
	if s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("no identity: %q", s.Header.Get("X-BMS-User"))
	}
	if v := s.Header.Get("X-Sess"); v != "" {
		t.Error("{http.request.cookie.k1sso} carried the session token upstream")
	}
	if v := s.Header.Get("X-Cookies"); strings.Contains(v, "k1sso") || !strings.Contains(v, "BMSSESSION=native") {
		t.Error("{http.request.header.Cookie} carried k1sso's cookie or lost BMSSESSION")
	}
	if v := s.Header.Get("Cookie"); strings.Contains(v, "k1sso") {
		t.Error("the Cookie header kept k1sso's cookie")
	}
}
