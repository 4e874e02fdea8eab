package caddymodule_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

var iframeRE = regexp.MustCompile(`<iframe[^>]*src="([^"]+)"`)
var continueRE = regexp.MustCompile(`id="continue" href="([^"]+)"`)

func TestGlobalLogoutThroughBMS(t *testing.T) {
	w := newWorld(t, "logout_path /logout", "upstream_cookies BMSSESSION")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	old := cookieOf(c, w.px.URL, "k1sso")
	if old == "" {
		t.Fatal("no session cookie after login")
	}
	u, _ := url.Parse(w.px.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "BMSSESSION", Value: "native-bms-session", Path: "/"}})
	w.up.Reset()

	resp := get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/logout")
	resp.Body.Close()

	// BMS got the logout first, as bob, with its own cookie.
	reached := false
	for _, s := range w.up.Requests() {
		if s.Path == "/logout" {
			reached = true
			if s.Header.Get("X-BMS-User") != "bob" || !strings.Contains(s.Header.Get("Cookie"), "BMSSESSION=native-bms-session") {
				t.Errorf("BMS logout request: user %q cookie %q", s.Header.Get("X-BMS-User"), s.Header.Get("Cookie"))
			}
		}
	}
	if !reached {
		t.Fatal("the logout request never reached BMS")
	}
	if !expired(resp, "k1sso") || !expired(resp, "BMSSESSION") {
		t.Errorf("logout did not expire k1sso and BMSSESSION: %v", resp.Header["Set-Cookie"])
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("logout Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), w.k1.URL+"/end_session?") {
		t.Fatalf("logout: %d to %q, want K1's end_session", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("post_logout_redirect_uri") != w.px.URL+"/login" || q.Get("state") == "" || q.Get("id_token_hint") == "" {
		t.Fatalf("end_session query: post_logout_redirect_uri %q, state %q, id_token_hint set %v",
			q.Get("post_logout_redirect_uri"), q.Get("state"), q.Get("id_token_hint") != "")
	}
	if cl := jwtClaims(t, q.Get("id_token_hint")); cl["sub"] != "k1|bob" || cl["aud"] != "bms-proxy" && !strings.Contains(jsonOf(cl["aud"]), "bms-proxy") {
		t.Errorf("id_token_hint is not bob's ID token: sub %v aud %v", cl["sub"], cl["aud"])
	}

	// The browser follows: K1 ends its session and its logged-out page
	// loads the front-channel iframe, then continues to BMS's login page.
	resp, err = c.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	for _, m := range iframeRE.FindAllStringSubmatch(b, -1) {
		fr := get(t, c, html.UnescapeString(m[1]))
		fr.Body.Close()
		if fr.StatusCode != http.StatusOK {
			t.Errorf("front-channel iframe %s: %d", m[1], fr.StatusCode)
		}
	}
	if m := continueRE.FindStringSubmatch(b); m != nil {
		resp = get(t, c, html.UnescapeString(m[1]))
		resp.Body.Close()
	}
	if resp.Request.URL.Host != u.Host || resp.Request.URL.Path != "/login" || resp.Request.URL.Query().Get("state") != q.Get("state") {
		t.Fatalf("after K1's logout the browser is at %s, want the login page with the state", resp.Request.URL)
	}

	// The old cookie carries no identity any more.
	w.up.Reset()
	resp = withCookie(t, w.px.URL, "/x", old)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" || !expired(resp, "k1sso") {
		t.Errorf("old cookie after logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, s := range w.up.Requests() {
		if s.Header.Get("X-BMS-User") != "" {
			t.Fatalf("old cookie reached BMS with identity at %s", s.Path)
		}
	}
	resp = withCookie(t, w.px.URL, "/.k1sso/whoami", old)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("whoami with the old cookie: %d, want 401", resp.StatusCode)
	}
	// And K1 asks for the password (and then the code) again.
	resp = get(t, c, w.px.URL+"/.k1sso/login?rd=/x")
	if k1devtest.FindForm([]byte(body(t, resp)), "password") == nil {
		t.Fatalf("a new login after logout did not show K1's password form (at %s)", resp.Request.URL)
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestBMSNativeLogoutPassesThrough(t *testing.T) {
	w := newWorld(t, "logout_path /logout", "upstream_cookies BMSSESSION")
	req, _ := http.NewRequest(http.MethodGet, w.px.URL+"/logout", nil)
	req.AddCookie(&http.Cookie{Name: "BMSSESSION", Value: "native"})
	resp, err := testenv.NoRedirect(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.DecodeSeen(t, resp)
	if resp.StatusCode != http.StatusOK || s.Path != "/logout" || len(resp.Header["Set-Cookie"]) != 0 {
		t.Fatalf("native logout: %d %s Set-Cookie %v", resp.StatusCode, s.Path, resp.Header["Set-Cookie"])
	}
}

func TestLogoutEndpoint(t *testing.T) {
	w := newWorld(t, "upstream_cookies BMSSESSION")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	old := cookieOf(c, w.px.URL, "k1sso")
	nr := testenv.NoRedirect(c.Jar)

	// GET shows a confirmation with a POST form; nothing ends yet.
	resp := get(t, nr, w.px.URL+"/.k1sso/logout")
	b := body(t, resp)
	form := k1devtest.FindForm([]byte(b), "csrf_token")
	if resp.StatusCode != http.StatusOK || form == nil || !strings.Contains(b, `method="post"`) {
		t.Fatalf("logout confirmation: %d %.300s", resp.StatusCode, b)
	}
	if s := testenv.DecodeSeen(t, withCookie(t, w.px.URL, "/x", old)); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("the confirmation page ended the session")
	}
	// POST without or with a wrong token: refused.
	for _, tok := range []string{"", "forged", testenv.CookieSecret} {
		resp, err := nr.PostForm(w.px.URL+"/.k1sso/logout", url.Values{"csrf_token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("logout POST with csrf_token %q: %d", tok, resp.StatusCode)
		}
	}
	w.up.Reset()
	resp, err := nr.PostForm(w.px.URL+"/.k1sso/logout", form.Fields())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL+"/end_session?") || !expired(resp, "k1sso") || !expired(resp, "BMSSESSION") {
		t.Fatalf("logout POST: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), resp.Header["Set-Cookie"])
	}
	if n := len(w.up.Requests()); n != 0 {
		t.Fatalf("/.k1sso/logout sent %d requests to BMS", n)
	}
	resp = withCookie(t, w.px.URL, "/x", old)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("old cookie after /.k1sso/logout: %d", resp.StatusCode)
	}

	// Without a proxy session (e.g. a K1 user without a BMS account), the
	// browser goes to K1 to end its K1 session there.
	resp = get(t, testenv.NoRedirect(nil), w.px.URL+"/.k1sso/logout")
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), w.k1.URL+"/end_session?") ||
		loc.Query().Get("client_id") != "bms-proxy" || loc.Query().Get("post_logout_redirect_uri") != w.px.URL+"/login" {
		t.Fatalf("logout without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// GET with a valid token logs out at once.
	c2, _ := w.loginAs(t, "alice", "/.k1sso/login?tenant=acme&rd=/x")
	resp = get(t, testenv.NoRedirect(c2.Jar), w.px.URL+"/.k1sso/logout")
	form = k1devtest.FindForm([]byte(body(t, resp)), "csrf_token")
	resp = get(t, testenv.NoRedirect(c2.Jar), w.px.URL+"/.k1sso/logout?csrf_token="+url.QueryEscape(form.Fields().Get("csrf_token")))
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL+"/end_session?") {
		t.Fatalf("logout GET with token: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestBMSLogoutAnswerKeepsItsCookies(t *testing.T) {
	// A BMS whose logout ends its session with a cookie of its own.
	reached := make(chan string, 4)
	bmsSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/logout" {
			reached <- r.Header.Get("X-BMS-User")
			http.SetCookie(w, &http.Cookie{Name: "BMSFLASH", Value: "logged-out", Path: "/"})
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(bmsSrv.Close)
	w := &world{k1: k1devtest.Start(t, nil)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: bmsSrv.URL, Users: testenv.DemoUsers(t), Options: []string{"logout_path /logout", "upstream_cookies BMSSESSION"}}
	w.px = testenv.StartCaddy(t, w.s)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")

	resp := get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/logout")
	resp.Body.Close()
	select {
	case u := <-reached:
		if u != "bob" {
			t.Errorf("BMS's logout saw X-BMS-User %q", u)
		}
	default:
		t.Fatal("the logout never reached BMS")
	}
	var flash bool
	for _, ck := range resp.Cookies() {
		flash = flash || ck.Name == "BMSFLASH" && ck.Value == "logged-out"
	}
	if !flash || !expired(resp, "k1sso") || !expired(resp, "BMSSESSION") || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL+"/end_session?") {
		t.Fatalf("logout answer: %d %q %v", resp.StatusCode, resp.Header.Get("Location"), resp.Header["Set-Cookie"])
	}
}
