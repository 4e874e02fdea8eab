package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// otherCoWorld is the demo world plus BMS accounts of K1 company "Other
// Co": carol in acme (user carol) and acme-labs (user carol.labs), and dave,
// a K1 user of Other Co who is listed as an admin of acme.
func otherCoWorld(t *testing.T) *world {
	t.Helper()
	return daveWorld(t, "carol@other.example,carol,acme,Acme,\ncarol@other.example,carol.labs,acme-labs,Acme Labs,\ndave@other.example,dave,acme,Acme,admin\n")
}

// noUpstreamAs fails when the upstream received a request as bmsUser.
func (w *world) noUpstreamAs(t *testing.T, bmsUser string) {
	t.Helper()
	for _, s := range w.up.Requests() {
		if s.Header.Get("X-BMS-User") == bmsUser {
			t.Errorf("the upstream got %s as %s in %s", s.Path, bmsUser, s.Header.Get("X-BMS-Tenant"))
		}
	}
}

// TestCompanyLinkOnEveryWayIn: once acme is linked to Acme MSP, carol of
// Other Co gets into acme by no way in: not by SP login, not by a launch
// from K1 (with or without tenant), not by the shortcuts of initiate and
// login that reuse the session she had before the link, not by the picker.
func TestCompanyLinkOnEveryWayIn(t *testing.T) {
	w := otherCoWorld(t)
	carol, resp := w.loginAs(t, "carol", "/.k1sso/login?tenant=acme&rd=/dashboard")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "carol" {
		t.Fatalf("carol before the link: %+v", s.Header)
	}
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("linking acme: %d", resp.StatusCode)
	}
	w.up.Reset()
	mismatch := func(t *testing.T, what string, resp *http.Response) {
		t.Helper()
		if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "another KaseyaOne company") {
			t.Errorf("%s: %d at %s, want the 403 of the company link", what, resp.StatusCode, resp.Request.URL.Path)
		}
	}

	_, resp = w.loginAs(t, "carol", "/.k1sso/login?tenant=acme&rd=/x")
	mismatch(t, "SP login", resp)
	launch := strings.TrimPrefix(w.initiateURL("iss", w.k1.URL, "tenant", "acme", "target_link_uri", w.px.URL+"/x"), w.px.URL)
	_, resp = w.loginAs(t, "carol", launch)
	mismatch(t, "K1 launch into acme", resp)

	// Her session of before the link is not reused, by initiate or login.
	nr := testenv.NoRedirect(carol.Jar)
	for _, u := range []string{launch, "/.k1sso/login?tenant=acme&rd=/x"} {
		resp := get(t, nr, w.px.URL+u)
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, w.k1.URL) {
			t.Errorf("%s with carol's session of before the link: %d to %q, want a new sign-in at K1", u, resp.StatusCode, loc)
		}
	}
	mismatch(t, "K1 launch with carol's session", get(t, carol, w.px.URL+launch))

	// A launch without tenant: acme is ruled out, she lands in acme-labs.
	launchAny := strings.TrimPrefix(w.initiateURL("iss", w.k1.URL, "target_link_uri", w.px.URL+"/x"), w.px.URL)
	c, resp := w.loginAs(t, "carol", launchAny)
	if s := testenv.DecodeSeen(t, resp); s.Path != "/x" || s.Header.Get("X-BMS-User") != "carol.labs" {
		t.Errorf("K1 launch without tenant: %s as %q, want /x as carol.labs", s.Path, s.Header.Get("X-BMS-User"))
	}
	// The picker refuses acme to that session too.
	b := body(t, get(t, c, w.px.URL+"/.k1sso/tenant?rd=/x"))
	tok := csrfRE.FindStringSubmatch(b)
	if tok == nil {
		t.Fatalf("picker has no CSRF token:\n%s", b)
	}
	resp, err := testenv.NoRedirect(c.Jar).PostForm(w.px.URL+"/.k1sso/tenant", url.Values{"csrf_token": {tok[1]}, "tenant": {"acme"}, "rd": {"/x"}})
	if err != nil {
		t.Fatal(err)
	}
	mismatch(t, "picking acme", resp)
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "carol.labs" {
		t.Errorf("after the refused pick: %q, want still carol.labs", s.Header.Get("X-BMS-User"))
	}
	w.noUpstreamAs(t, "carol")

	// bob of Acme MSP gets in by every way.
	_, resp = w.loginAs(t, "bob", launch)
	if s := testenv.DecodeSeen(t, resp); s.Path != "/x" || s.Header.Get("X-BMS-User") != "bob" {
		t.Errorf("bob's launch into linked acme: %s as %q", s.Path, s.Header.Get("X-BMS-User"))
	}
}

// callbackCookies is a client transport that keeps every Set-Cookie of
// the proxy's callback answers, as a client would that keeps the first of
// several cookies of one name.
type callbackCookies struct {
	mu  sync.Mutex
	all []*http.Cookie
}

func (cc *callbackCookies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.URL.Path == "/.k1sso/callback" {
		cc.mu.Lock()
		cc.all = append(cc.all, resp.Cookies()...)
		cc.mu.Unlock()
	}
	return resp, err
}

// sessionCookies are the first non-empty value of every session cookie
// (and chunk) the callbacks set, as one Cookie header.
func (cc *callbackCookies) sessionCookies() string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	seen := map[string]bool{}
	var parts []string
	for _, ck := range cc.all {
		own := ck.Name == "k1sso" || strings.HasPrefix(ck.Name, "k1sso-") &&
			!strings.HasPrefix(ck.Name, "k1sso-login-") && ck.Name != "k1sso-admin"
		if !own || ck.Value == "" || seen[ck.Name] {
			continue
		}
		seen[ck.Name] = true
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

// replay sends the session cookies the callbacks set to BMS and returns the
// BMS user the upstream saw ("" for none). A session without a tenant
// carries no identity, so any session cookie set at all is reported too.
func (cc *callbackCookies) replay(t *testing.T, base string) string {
	t.Helper()
	if set := cc.sessionCookies(); set != "" {
		t.Errorf("the callback set a session cookie (%s)", strings.SplitN(set, "=", 2)[0])
	}
	resp := get(t, testenv.NoRedirect(nil), base+"/x", "Cookie", cc.sessionCookies())
	return testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
}

// purposeSwitch is switchAs in a browser that records the callbacks'
// cookies.
func (w *world) purposeSwitch(t *testing.T, user, tenant string, on bool) (*callbackCookies, *http.Response, string) {
	t.Helper()
	cc := &callbackCookies{}
	c := &http.Client{Jar: newJar(), Transport: cc, Timeout: 30 * time.Second}
	resp := postSwitch(t, c, w.px.URL, tenant, on, w.adminToken(t, c, w.px.URL, user))
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, w.k1.URL) {
		t.Fatalf("admin POST of %s: %d to %q, want K1", user, resp.StatusCode, loc)
	}
	d := demo[user]
	resp, err := w.k1.Login(c, loc, user, d[0], d[1])
	if err != nil {
		t.Fatal(err)
	}
	return cc, resp, body(t, resp)
}

// TestPurposeSignInWritesNoSession: a sign-in made to change the
// integration switch never writes a session, refused or not, so not even
// a client that keeps the first Set-Cookie of the callback gets one.
func TestPurposeSignInWritesNoSession(t *testing.T) {
	w := otherCoWorld(t)
	cc, resp, b := w.purposeSwitch(t, "alice", "acme", true)
	if !strings.Contains(b, doneMessage) {
		t.Fatalf("alice linking acme: %d\n%s", resp.StatusCode, b)
	}
	if v := cc.replay(t, w.px.URL); v != "" {
		t.Errorf("the callback of alice's switch change set a session of %s", v)
	}

	// dave of Other Co, an admin of acme in the users file: acme's link
	// to Acme MSP holds for changes too.
	cc, resp, b = w.purposeSwitch(t, "dave", "acme", false)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "another KaseyaOne company") {
		t.Errorf("dave switching off acme (linked to Acme MSP): %d\n%s", resp.StatusCode, b)
	}
	if v := cc.replay(t, w.px.URL); v != "" {
		t.Errorf("dave's refused change left a session of %s", v)
	}
	if st, page := w.switches(t, w.px.URL); !st["acme"] || !strings.Contains(page, `<span class="company">Acme MSP</span>`) {
		t.Errorf("dave's refused change changed acme: %v", st)
	}

	t.Run("stale sign-in", func(t *testing.T) {
		caddymodule.SetReauthWindow(t, time.Nanosecond)
		cc, resp, b := w.purposeSwitch(t, "alice", "acme", false)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "Sign-in too old") {
			t.Fatalf("stale sign-in: %d\n%s", resp.StatusCode, b)
		}
		if v := cc.replay(t, w.px.URL); v != "" {
			t.Errorf("the \"Sign-in too old\" answer carried a session of %s", v)
		}
	})
	w.noUpstreamAs(t, "dave")
}

// TestAdminPageNeedsSignIn: /.k1sso/admin shows nothing before a K1
// sign-in, and then only the tenants the user administers.
func TestAdminPageNeedsSignIn(t *testing.T) {
	w := otherCoWorld(t)
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("linking acme: %d", resp.StatusCode)
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(m, w.px.URL+"/.k1sso/admin", nil)
		resp, err := testenv.NoRedirect(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := body(t, resp)
		for _, leak := range []string{"acme", "Acme MSP", "alice@acme.example", "csrf_token"} {
			if strings.Contains(b, leak) {
				t.Errorf("%s /.k1sso/admin without a sign-in shows %q", m, leak)
			}
		}
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, w.k1.URL) {
			t.Errorf("%s /.k1sso/admin without a sign-in: %d to %q, want a sign-in at K1", m, resp.StatusCode, loc)
		}
	}

	resp, err := w.k1.Login(k1devtest.NewClient(), w.px.URL+"/.k1sso/admin", "bob", "Acme MSP", "bob-pass")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || strings.Contains(b, "data-tenant") || strings.Contains(b, "Acme MSP") {
		t.Errorf("bob (no admin) on the admin page: %d\n%s", resp.StatusCode, b)
	}

	dave := k1devtest.NewClient()
	resp, err = w.k1.Login(dave, w.px.URL+"/.k1sso/admin", "dave", "Other Co", "dave-pass")
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(b, `data-tenant="acme"`) || strings.Contains(b, `data-tenant="acme-labs"`) {
		t.Errorf("dave (admin of acme only) on the admin page: %d\n%s", resp.StatusCode, b)
	}
	// A change of a tenant he does not administer is refused before K1.
	tok := csrfRE.FindStringSubmatch(b)
	if tok == nil {
		t.Fatal("no CSRF token on dave's admin page")
	}
	resp = postSwitch(t, dave, w.px.URL, "acme-labs", false, tok[1])
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" {
		t.Errorf("dave posting a change of acme-labs: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The admin page's sign-in is no session.
	if s := testenv.DecodeSeen(t, get(t, dave, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "" {
		t.Errorf("dave's admin sign-in gave him the identity %q", s.Header.Get("X-BMS-User"))
	}
	if st, _ := w.switches(t, w.px.URL); !st["acme"] || !st["acme-labs"] {
		t.Errorf("states changed: %v", st)
	}
}

// TestAdminChangeNeedsFreshAuthTime: a change's sign-in asks K1 for a new
// authentication (prompt=login, max_age=0), and an ID token without
// auth_time, or with an old one, changes nothing.
func TestAdminChangeNeedsFreshAuthTime(t *testing.T) {
	h := newHostile(t)
	var authTime atomic.Int64 // 0: no auth_time claim
	h.op.Set(hostileop.Behavior{Claims: func(c map[string]any) {
		c["sub"], c["email"], c["k1_company"] = "k1|alice", "alice@acme.example", "Acme MSP"
		if at := authTime.Load(); at != 0 {
			c["auth_time"] = at
		}
	}})
	c := &http.Client{Jar: newJar(), Timeout: 15 * time.Second}
	state := func() string {
		t.Helper()
		b := body(t, get(t, c, h.px.URL+"/.k1sso/admin"))
		m := rowRE.FindAllStringSubmatch(b, -1)
		for _, r := range m {
			if r[1] == "acme" {
				return r[2]
			}
		}
		t.Fatalf("no acme row on the admin page:\n%s", b)
		return ""
	}
	change := func(on bool) (*http.Response, string) {
		t.Helper()
		b := body(t, get(t, c, h.px.URL+"/.k1sso/admin"))
		tok := csrfRE.FindStringSubmatch(b)
		if tok == nil {
			t.Fatalf("no CSRF token:\n%s", b)
		}
		resp := postSwitch(t, c, h.px.URL, "acme", on, tok[1])
		resp.Body.Close()
		u, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(u.String(), h.op.URL) {
			t.Fatalf("admin POST: %d to %q", resp.StatusCode, u)
		}
		if q := u.Query(); q.Get("prompt") != "login" || q.Get("max_age") != "0" {
			t.Errorf("the change's sign-in asks prompt=%q max_age=%q, want login and 0", q.Get("prompt"), q.Get("max_age"))
		}
		resp = get(t, c, u.String())
		return resp, body(t, resp)
	}
	if s := state(); s != "on" {
		t.Fatalf("acme starts %s", s)
	}
	resp, b := change(false)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "auth_time") {
		t.Errorf("an ID token without auth_time: %d\n%s", resp.StatusCode, b)
	}
	authTime.Store(time.Now().Add(-10 * time.Minute).Unix())
	if resp, b := change(false); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "Sign-in too old") {
		t.Errorf("auth_time ten minutes old: %d\n%s", resp.StatusCode, b)
	}
	if s := state(); s != "on" {
		t.Fatalf("a change without a fresh auth_time switched acme %s", s)
	}
	authTime.Store(time.Now().Unix())
	if resp, b := change(false); !strings.Contains(b, doneMessage) {
		t.Errorf("a fresh auth_time: %d\n%s", resp.StatusCode, b)
	}
	if s := state(); s != "off" {
		t.Fatalf("after the accepted change acme is %s", s)
	}
}
