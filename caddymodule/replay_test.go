package caddymodule_test

import (
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// posted is a POST as BMS received it.
type posted struct {
	path, user, body string
}

// formUpstream records the body of every POST it gets.
type formUpstream struct {
	URL   string
	mu    sync.Mutex
	posts []posted
}

func newFormUpstream(t *testing.T) *formUpstream {
	u := &formUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			b, _ := io.ReadAll(r.Body)
			u.mu.Lock()
			u.posts = append(u.posts, posted{r.URL.RequestURI(), r.Header.Get("X-BMS-User"), string(b)})
			u.mu.Unlock()
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok "+r.Method+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	u.URL = srv.URL
	return u
}

func (u *formUpstream) all() []posted {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]posted(nil), u.posts...)
}

// formWorld is k1dev, a Caddy in enforce mode and the recording upstream,
// with bob signed in whose proxy session then ended (the browser dropped
// the expired cookie; the K1 session lives on).
func formWorld(t *testing.T) (*world, *formUpstream, *http.Client) {
	t.Helper()
	up := newFormUpstream(t)
	w := &world{k1: k1devtest.Start(t, nil)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t), Options: []string{"enforce"}}
	w.px = testenv.StartCaddy(t, w.s)
	c, resp := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	resp.Body.Close()
	endSession(t, c, w.px.URL)
	return w, up, c
}

func endSession(t *testing.T, c *http.Client, base string) {
	t.Helper()
	u, _ := url.Parse(base)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "k1sso", Value: "", Path: "/", MaxAge: -1}})
	if cookieOf(c, base, "k1sso") != "" {
		t.Fatal("the session cookie is still there")
	}
}

// postForm posts body as a form to path with the browser's fetch metadata.
func postForm(t *testing.T, c *http.Client, base, path, body string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := testenv.NoRedirect(c.Jar).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)

// replayForm reads the replay page's form: its action and its body.
func replayForm(t *testing.T, page string) (string, string) {
	t.Helper()
	m := regexp.MustCompile(`<form id="k1sso-replay" method="post" action="([^"]*)">`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, "Sending your form again") {
		t.Fatalf("not the replay page: %.400s", page)
	}
	var parts []string
	for _, f := range hiddenRE.FindAllStringSubmatch(page, -1) {
		parts = append(parts, url.QueryEscape(html.UnescapeString(f[1]))+"="+url.QueryEscape(html.UnescapeString(f[2])))
	}
	return html.UnescapeString(m[1]), strings.Join(parts, "&")
}

// TestReplayKeptForm: a same-origin form posted after the session ended is
// kept, the login at K1 is silent (its session lives), and the form is
// posted again to the same URL with every field, once.
func TestReplayKeptForm(t *testing.T) {
	w, up, c := formWorld(t)
	form := url.Values{"subject": {"Printer on fire <now>"}, "body": {"Line one\r\nLine two & more"}, "tag": {"a", "b"}, "priority": {"high"}}
	resp := postForm(t, c, w.px.URL, "/tickets/new?queue=2", form.Encode(), "Origin", w.px.URL, "Sec-Fetch-Site", "same-origin")
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login?rd=%2F.k1sso%2Freplay") {
		t.Fatalf("form without a session: %d %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(up.all()) != 0 {
		t.Fatal("the form reached BMS without a session")
	}
	resp = get(t, c, w.px.URL+resp.Header.Get("Location"))
	page := body(t, resp)
	if resp.Request.URL.Path != "/.k1sso/replay" {
		t.Fatalf("after the login: %s, want the replay page", resp.Request.URL)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "form-action 'self'") {
		t.Fatalf("replay page CSP %q", csp)
	}
	action, sent := replayForm(t, page)
	if action != "/tickets/new?queue=2" {
		t.Fatalf("replay action %q", action)
	}
	got, _ := url.ParseQuery(sent)
	if got.Encode() != form.Encode() {
		t.Fatalf("replayed fields %v, want %v", got, form)
	}
	resp = postForm(t, c, w.px.URL, action, sent, "Origin", w.px.URL, "Sec-Fetch-Site", "same-origin")
	resp.Body.Close()
	if p := up.all(); len(p) != 1 || p[0].path != "/tickets/new?queue=2" || p[0].user != "bob" || p[0].body != sent {
		t.Fatalf("BMS got %+v, want the form once as bob", p)
	}
	// Never twice: the page is gone, even with the old form cookie put back.
	resp = get(t, c, w.px.URL+"/.k1sso/replay")
	if b := body(t, resp); resp.StatusCode != http.StatusNotFound || strings.Contains(b, "k1sso-replay") {
		t.Fatalf("second replay: %d %.200s", resp.StatusCode, b)
	}
}

// TestReplayKeptFormOnce: the form cookie replayed by hand after its use
// yields nothing.
func TestReplayKeptFormOnce(t *testing.T) {
	w, _, c := formWorld(t)
	resp := postForm(t, c, w.px.URL, "/tickets", "subject=x", "Origin", w.px.URL)
	resp.Body.Close()
	id := cookieOf(c, w.px.URL, "k1sso-form")
	if resp.StatusCode != http.StatusSeeOther || id == "" {
		t.Fatalf("form without a session: %d, form cookie %v", resp.StatusCode, id != "")
	}
	resp = get(t, c, w.px.URL+resp.Header.Get("Location"))
	replayForm(t, body(t, resp))
	u, _ := url.Parse(w.px.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "k1sso-form", Value: id, Path: "/"}})
	resp = get(t, c, w.px.URL+"/.k1sso/replay")
	if b := body(t, resp); resp.StatusCode != http.StatusNotFound || strings.Contains(b, "k1sso-replay") {
		t.Fatalf("replay with the used form cookie: %d %.200s", resp.StatusCode, b)
	}
}

// TestReplayRefused: cross-site posts, posts without fetch metadata or
// Origin, other content types and forms over 64 KB are never kept: they
// get the 401 and no form cookie.
func TestReplayRefused(t *testing.T) {
	w, up, c := formWorld(t)
	big := "f=" + strings.Repeat("x", 64<<10-1) // 64 KB + 1
	for _, tc := range []struct {
		name string
		body string
		hdr  []string
	}{
		{"cross-site fetch metadata", "a=1", []string{"Sec-Fetch-Site", "cross-site", "Origin", w.px.URL}},
		{"same-site fetch metadata", "a=1", []string{"Sec-Fetch-Site", "same-site", "Origin", w.px.URL}},
		{"other origin", "a=1", []string{"Origin", "http://evil.example"}},
		{"null origin", "a=1", []string{"Origin", "null"}},
		{"no metadata", "a=1", nil},
		{"json", `{"a":1}`, []string{"Origin", w.px.URL, "Content-Type", "application/json"}},
		{"over 64 KB", big, []string{"Origin", w.px.URL, "Sec-Fetch-Site", "same-origin"}},
	} {
		resp := postForm(t, c, w.px.URL, "/tickets", tc.body, tc.hdr...)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || cookieOf(c, w.px.URL, "k1sso-form") != "" {
			t.Errorf("%s: %d, form cookie %q; want 401 and nothing kept", tc.name, resp.StatusCode, cookieOf(c, w.px.URL, "k1sso-form"))
		}
	}
	// Exactly 64 KB is kept.
	resp := postForm(t, c, w.px.URL, "/tickets", big[:len(big)-1], "Origin", w.px.URL, "Sec-Fetch-Site", "same-origin")
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || cookieOf(c, w.px.URL, "k1sso-form") == "" {
		t.Fatalf("a 64 KB form: %d, want it kept", resp.StatusCode)
	}
	if len(up.all()) != 0 {
		t.Fatal("a post without a session reached BMS")
	}
}

// optionalFormWorld is formWorld in optional mode, with a 2 s idle timeout
// and BMS's login page and session cookie named, and bob signed in.
func optionalFormWorld(t *testing.T) (*world, *formUpstream, *http.Client) {
	t.Helper()
	caddymodule.SetLifecycleUnit(t, time.Second)
	up := newFormUpstream(t)
	w := &world{k1: k1devtest.Start(t, nil)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t),
		Options: []string{"session_idle_timeout 2s", "login_path /login", "upstream_cookies BMSSESSION"}}
	w.px = testenv.StartCaddy(t, w.s)
	c, resp := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	resp.Body.Close()
	return w, up, c
}

// sameOrigin is what a browser sends with a form of this site.
func sameOrigin(base string) []string {
	return []string{"Origin", base, "Sec-Fetch-Site", "same-origin"}
}

// replayAfterLogin follows a kept form through the login to the replay
// page, posts what it holds and checks BMS got the form once, as bob, with
// every field.
func replayAfterLogin(t *testing.T, w *world, up *formUpstream, c *http.Client, resp *http.Response, path string, form url.Values) {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login?rd=%2F.k1sso%2Freplay") {
		t.Fatalf("form of an ended session: %d %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	if len(up.all()) != 0 {
		t.Fatalf("the form reached BMS before the login: %+v", up.all())
	}
	resp = get(t, c, w.px.URL+resp.Header.Get("Location"))
	page := body(t, resp)
	if resp.Request.URL.Path != "/.k1sso/replay" {
		t.Fatalf("after the login: %s, want the replay page", resp.Request.URL)
	}
	action, sent := replayForm(t, page)
	if got, _ := url.ParseQuery(sent); action != path || got.Encode() != form.Encode() {
		t.Fatalf("replay to %q with %v, want %q with %v", action, got, path, form)
	}
	resp = postForm(t, c, w.px.URL, action, sent, sameOrigin(w.px.URL)...)
	resp.Body.Close()
	if p := up.all(); len(p) != 1 || p[0].path != path || p[0].user != "bob" || p[0].body != sent {
		t.Fatalf("BMS got %+v, want the form once as bob", p)
	}
	resp = get(t, c, w.px.URL+"/.k1sso/replay")
	if b := body(t, resp); resp.StatusCode != http.StatusNotFound || strings.Contains(b, "k1sso-replay") {
		t.Fatalf("second replay: %d %.200s", resp.StatusCode, b)
	}
}

// In optional mode a form posted with the cookie of a session that went
// idle is the user's, typed while the session ran out: it is kept and
// replayed after the K1 login as in enforce mode.
func TestReplayOptionalIdleSession(t *testing.T) {
	w, up, c := optionalFormWorld(t)
	time.Sleep(2500 * time.Millisecond)
	if cookieOf(c, w.px.URL, "k1sso") == "" {
		t.Fatal("the browser dropped the idle session's cookie")
	}
	form := url.Values{"title": {"Printer on fire & smoking"}, "account": {"Acme <Main> Office"}, "priority": {"High"},
		"description": {"Line one\r\nLine two: 100% \"urgent\""}}
	resp := postForm(t, c, w.px.URL, "/tickets", form.Encode(), sameOrigin(w.px.URL)...)
	resp.Body.Close()
	replayAfterLogin(t, w, up, c, resp, "/tickets", form)
}

// In optional mode a form posted with the cookie of a session past its
// end (the proxy's clock moved on; the browser still sends the cookie) is
// kept too: the cookie is k1sso's own, authenticated, so it proves the
// session.
func TestReplayOptionalExpiredSession(t *testing.T) {
	w, up, c := optionalFormWorld(t)
	caddymodule.ShiftClock(t, 9*time.Hour)
	form := url.Values{"title": {"after the lifetime"}, "tag": {"a", "b"}}
	resp := postForm(t, c, w.px.URL, "/tickets?queue=2", form.Encode(), sameOrigin(w.px.URL)...)
	resp.Body.Close()
	// The login that follows is at K1's time again, without the old cookie.
	caddymodule.ShiftClock(t, 0)
	endSession(t, c, w.px.URL)
	replayAfterLogin(t, w, up, c, resp, "/tickets?queue=2", form)
}

// In optional mode every other post passes to BMS untouched, body and all:
// without a session cookie, with one that is not k1sso's (garbage, or a
// forgery), cross-site or without fetch metadata even with an ended
// session's cookie, to BMS's own login page, with BMS's own session
// cookie, and a form too large to keep that the proxy had to read to know.
func TestReplayOptionalPassesOtherPosts(t *testing.T) {
	w, up, c := optionalFormWorld(t)
	idle := cookieOf(c, w.px.URL, "k1sso")
	time.Sleep(2500 * time.Millisecond)
	big := "f=" + strings.Repeat("x", 70<<10)
	for i, tc := range []struct {
		name, path, body string
		cookies          []*http.Cookie
		hdr              []string
		chunked          bool
	}{
		{name: "no cookie", path: "/tickets", body: "a=1", hdr: sameOrigin(w.px.URL)},
		{name: "garbage cookie", path: "/tickets", body: "a=2", cookies: []*http.Cookie{{Name: "k1sso", Value: "garbage"}}, hdr: sameOrigin(w.px.URL)},
		{name: "forged cookie", path: "/tickets", body: "a=3", cookies: []*http.Cookie{{Name: "k1sso", Value: idle[:len(idle)-4] + "AAAA"}}, hdr: sameOrigin(w.px.URL)},
		{name: "cross-site", path: "/tickets", body: "a=4", cookies: []*http.Cookie{{Name: "k1sso", Value: idle}}, hdr: []string{"Sec-Fetch-Site", "cross-site", "Origin", "http://evil.example"}},
		{name: "same-site", path: "/tickets", body: "a=5", cookies: []*http.Cookie{{Name: "k1sso", Value: idle}}, hdr: []string{"Sec-Fetch-Site", "same-site", "Origin", w.px.URL}},
		{name: "no fetch metadata", path: "/tickets", body: "a=6", cookies: []*http.Cookie{{Name: "k1sso", Value: idle}}},
		{name: "BMS's login", path: "/login", body: "a=7", cookies: []*http.Cookie{{Name: "k1sso", Value: idle}}, hdr: sameOrigin(w.px.URL)},
		{name: "BMS's own session", path: "/tickets", body: "a=8", cookies: []*http.Cookie{{Name: "k1sso", Value: idle}, {Name: "BMSSESSION", Value: "native"}}, hdr: sameOrigin(w.px.URL)},
		{name: "too large, chunked", path: "/tickets", body: big, cookies: []*http.Cookie{{Name: "k1sso", Value: idle}}, hdr: sameOrigin(w.px.URL), chunked: true},
	} {
		var rd io.Reader = strings.NewReader(tc.body)
		if tc.chunked {
			rd = io.MultiReader(rd) // no length: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, w.px.URL+tc.path, rd)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for j := 0; j+1 < len(tc.hdr); j += 2 {
			req.Header.Set(tc.hdr[j], tc.hdr[j+1])
		}
		for _, ck := range tc.cookies {
			req.AddCookie(ck)
		}
		resp, err := testenv.NoRedirect(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		p := up.all()
		if resp.StatusCode != http.StatusOK || len(p) != i+1 || p[i].path != tc.path || p[i].user != "" || p[i].body != tc.body {
			t.Errorf("%s: %d, BMS got %d posts; want it passed on untouched", tc.name, resp.StatusCode, len(p))
			return
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == "k1sso-form" {
				t.Errorf("%s: a form was kept", tc.name)
			}
		}
	}
}

// In optional mode a form posted with the cookie of a session revoked at
// K1 (back-channel logout) is kept as well: the revoked session goes
// through K1, which asks for the password again.
func TestReplayOptionalRevokedSession(t *testing.T) {
	w, up, c := optionalFormWorld(t)
	cookie := cookieOf(c, w.px.URL, "k1sso")
	w.k1.Server.EndSessions("bob")
	for i := 0; ; i++ {
		resp := withCookie(t, w.px.URL, "/x", cookie)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			break
		}
		if i > 100 {
			t.Fatal("the back-channel logout did not revoke the session")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp := postForm(t, c, w.px.URL, "/tickets", "title=x", sameOrigin(w.px.URL)...)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login?rd=%2F.k1sso%2Freplay") ||
		cookieOf(c, w.px.URL, "k1sso-form") == "" {
		t.Fatalf("form of a revoked session: %d %q, want it kept", resp.StatusCode, resp.Header.Get("Location"))
	}
	if p := up.all(); len(p) != 0 {
		t.Fatalf("BMS got %+v", p)
	}
}
