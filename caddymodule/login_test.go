package caddymodule_test

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

func TestLoginReachesUpstreamWithIdentity(t *testing.T) {
	w := newWorld(t)
	_, resp := w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dashboard" {
		t.Fatalf("after login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	seen := testenv.DecodeSeen(t, resp)
	want := map[string]string{"X-K1-Email": "bob@acme.example", "X-Bms-User": "bob", "X-Bms-Tenant": "acme", "X-K1-Subject": "k1|bob"}
	for k, v := range want {
		if got := seen.Header.Get(k); got != v {
			t.Errorf("upstream %s = %q, want %q", k, got, v)
		}
	}
	if ck := seen.Header.Get("Cookie"); strings.Contains(ck, "k1sso") {
		t.Errorf("upstream got k1sso's cookies: %q", ck)
	}
	if _, ok := seen.Header["X-Bms-Roles"]; !ok {
		t.Error("upstream got no X-BMS-Roles (empty for bob, but present)")
	}

	// The assertion verifies against the proxy's JWKS.
	ctx := context.Background()
	keys := oidc.NewRemoteKeySet(ctx, w.px.URL+"/.k1sso/jwks.json")
	v := oidc.NewVerifier(w.px.URL, keys, &oidc.Config{ClientID: "bms", SupportedSigningAlgs: []string{oidc.ES256}})
	tok, err := v.Verify(ctx, seen.Header.Get("X-K1-Assertion"))
	if err != nil {
		t.Fatalf("assertion does not verify: %v", err)
	}
	var c struct {
		Email, BMSUser, Tenant string
		Roles                  []string
	}
	var raw map[string]any
	_ = tok.Claims(&raw)
	c.Email, _ = raw["email"].(string)
	c.BMSUser, _ = raw["bms_user"].(string)
	c.Tenant, _ = raw["tenant"].(string)
	if tok.Subject != "k1|bob" || c.Email != "bob@acme.example" || c.BMSUser != "bob" || c.Tenant != "acme" {
		t.Errorf("assertion claims: sub %q %+v", tok.Subject, raw)
	}
	if tok.Expiry.Sub(tok.IssuedAt) > 10*60e9 {
		t.Errorf("assertion lives %s; want short-lived", tok.Expiry.Sub(tok.IssuedAt))
	}
}

func TestEnforceAndOptionalModes(t *testing.T) {
	w := newWorld(t, "enforce", "public /static/*")
	nr := testenv.NoRedirect(nil)

	resp := get(t, nr, w.px.URL+"/dashboard?x=1")
	loc := resp.Header.Get("Location")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || loc != "/.k1sso/login?rd="+url.QueryEscape("/dashboard?x=1") {
		t.Fatalf("enforce GET without session: %d Location %q", resp.StatusCode, loc)
	}
	req, _ := http.NewRequest(http.MethodPost, w.px.URL+"/api/tickets", strings.NewReader("{}"))
	resp, _ = nr.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("enforce POST without session: %d, want 401", resp.StatusCode)
	}
	resp = get(t, nr, w.px.URL+"/dashboard", "Accept", "application/json")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("enforce JSON GET without session: %d, want 401", resp.StatusCode)
	}
	for _, p := range []string{"/static/app.css", "/login"} {
		resp = get(t, nr, w.px.URL+p)
		if resp.StatusCode != 200 {
			t.Fatalf("public %s: %d", p, resp.StatusCode)
		}
		if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "" {
			t.Fatalf("public %s carried identity", p)
		}
	}
	for _, s := range w.up.Requests() {
		if s.Path == "/dashboard?x=1" || s.Path == "/api/tickets" {
			t.Fatalf("enforce forwarded %s without a session", s.Path)
		}
	}

	// Optional mode: the same request passes without identity.
	w.s.Options = nil
	w.reload(t)
	resp = get(t, nr, w.px.URL+"/dashboard")
	if resp.StatusCode != 200 {
		t.Fatalf("optional mode GET: %d", resp.StatusCode)
	}
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "" {
		t.Fatal("optional mode without session carried identity")
	}
}

func TestForgedIdentityHeadersAreStripped(t *testing.T) {
	w := newWorld(t)
	forged := []string{"X-BMS-User", "mallory", "x-bms-user", "mallory2", "X_BMS_User", "mallory3",
		"X-K1-Email", "mallory@evil.example", "x_k1_assertion", "forged.jwt.value", "X-Bms-Tenant", "evil", "X-BMS-Roles", "admin"}
	check := func(t *testing.T, s testenv.Seen, wantUser string) {
		t.Helper()
		for k, vs := range s.Header {
			for _, v := range vs {
				if strings.Contains(v, "mallory") || v == "evil" || v == "forged.jwt.value" || (strings.EqualFold(strings.ReplaceAll(k, "_", "-"), "X-BMS-Roles") && v == "admin") {
					t.Errorf("forged header reached upstream: %s: %s", k, v)
				}
			}
		}
		if got := s.Header.Get("X-BMS-User"); got != wantUser {
			t.Errorf("X-BMS-User = %q, want %q", got, wantUser)
		}
	}
	// Without a session.
	check(t, testenv.DecodeSeen(t, get(t, http.DefaultClient, w.px.URL+"/dashboard", forged...)), "")
	// With a session: the real identity, never the forged one.
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	check(t, testenv.DecodeSeen(t, get(t, c, w.px.URL+"/dashboard", forged...)), "bob")
}

func TestRedirectTargetsStayLocal(t *testing.T) {
	w := newWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	nr := testenv.NoRedirect(c.Jar)
	evil := []string{"//evil.com", "/\\evil.com", "https://evil.com", "%2F%2Fevil.com", "/%5Cevil.com",
		"/..//evil.com", "https://bms@evil.com", "/%2F%2Fevil.com", "http:evil.com", "\t//evil.com", "/./\\evil.com"}
	for _, rd := range evil {
		resp := get(t, nr, w.px.URL+"/.k1sso/login?rd="+url.QueryEscape(rd))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		u, err := url.Parse(loc)
		if resp.StatusCode != http.StatusFound || err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(loc, "/") ||
			strings.HasPrefix(loc, "//") || strings.Contains(loc, "\\") || strings.Contains(strings.ToLower(loc), "evil.com") && !strings.HasPrefix(loc, "/evil.com") {
			t.Errorf("rd=%q: redirected to %q", rd, loc)
		}
	}
	// The full flow too: a fresh browser with an evil rd lands on the proxy.
	_, resp := w.loginAs(t, "bob", "/.k1sso/login?rd="+url.QueryEscape("//evil.com/x"))
	resp.Body.Close()
	if resp.Request.URL.Host != strings.TrimPrefix(w.px.URL, "http://") {
		t.Fatalf("login with rd=//evil.com ended at %s", resp.Request.URL)
	}
}

func TestTamperedCookieIsAbsent(t *testing.T) {
	w := newWorld(t, "enforce")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	u, _ := url.Parse(w.px.URL)
	var val string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "k1sso" {
			val = ck.Value
		}
	}
	if val == "" {
		t.Fatal("no k1sso session cookie after login")
	}
	for _, bad := range []string{val[:len(val)-2] + "AA", "A" + val[1:], val[:len(val)/2]} {
		if bad == val {
			continue
		}
		req, _ := http.NewRequest(http.MethodGet, w.px.URL+"/dashboard", nil)
		req.AddCookie(&http.Cookie{Name: "k1sso", Value: bad})
		resp, err := testenv.NoRedirect(nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login") {
			t.Errorf("tampered cookie: %d %s, want redirect to login", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestCookieSecretRotation(t *testing.T) {
	w := newWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	newSecret := "a-brand-new-cookie-secret-0123456789"
	w.s.Secrets = []string{newSecret, testenv.CookieSecret}
	w.reload(t)
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("a cookie of the old secret stopped working when a new secret was put first")
	}
	w.s.Secrets = []string{newSecret}
	w.reload(t)
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "" {
		t.Fatal("a cookie of a removed secret still works")
	}
}

func TestNoDirectoryMatchIs403(t *testing.T) {
	w := newWorld(t)
	_, resp := w.loginAs(t, "carol", "/.k1sso/login?rd=/dashboard")
	b := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "carol@other.example") || !strings.Contains(b, "/.k1sso/logout") {
		t.Fatalf("carol: %d %.400s", resp.StatusCode, b)
	}
	for _, s := range w.up.Requests() {
		t.Fatalf("upstream got %s for a user without an account", s.Path)
	}
}

func TestTenantPicker(t *testing.T) {
	w := newWorld(t)
	c, resp := w.loginAs(t, "alice", "/.k1sso/login?rd=/tickets")
	b := body(t, resp)
	if resp.Request.URL.Path != "/.k1sso/tenant" || !strings.Contains(b, `data-tenant="acme-labs"`) || !strings.Contains(b, `data-tenant="acme"`) {
		t.Fatalf("alice with two tenants: %d at %s: %.300s", resp.StatusCode, resp.Request.URL, b)
	}
	// No identity before a tenant is chosen.
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "" {
		t.Fatal("identity before choosing a tenant")
	}
	form := k1devtest.FindForm([]byte(b), "csrf_token")
	if form == nil {
		t.Fatal("no CSRF token in the picker")
	}
	// Without the token: refused.
	resp, _ = c.PostForm(w.px.URL+"/.k1sso/tenant", url.Values{"tenant": {"acme-labs"}, "rd": {"/tickets"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("picker POST without CSRF: %d", resp.StatusCode)
	}
	resp.Body.Close()
	// A tenant she lacks: refused.
	resp, _ = c.PostForm(w.px.URL+"/.k1sso/tenant", url.Values{"tenant": {"other"}, "csrf_token": {form.Fields().Get("csrf_token")}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("picker POST of a foreign tenant: %d", resp.StatusCode)
	}
	resp.Body.Close()
	resp, _ = c.PostForm(w.px.URL+"/.k1sso/tenant", url.Values{"tenant": {"acme-labs"}, "rd": {"/tickets"}, "csrf_token": {form.Fields().Get("csrf_token")}})
	s := testenv.DecodeSeen(t, resp)
	if s.Path != "/tickets" || s.Header.Get("X-BMS-User") != "alice.labs" || s.Header.Get("X-BMS-Tenant") != "acme-labs" || s.Header.Get("X-BMS-Roles") != "admin" {
		t.Fatalf("after picking acme-labs: %s %v", s.Path, s.Header)
	}

	// A login that names a tenant skips the picker; one she lacks is 403.
	_, resp = w.loginAs(t, "alice", "/.k1sso/login?tenant=acme&rd=/x")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "alice" {
		t.Fatalf("login with tenant=acme: %v", s.Header)
	}
	_, resp = w.loginAs(t, "bob", "/.k1sso/login?tenant=acme-labs")
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "acme-labs") {
		t.Fatalf("bob into acme-labs: %d %.300s", resp.StatusCode, b)
	}
}

func TestDirectoryHotReload(t *testing.T) {
	w := newWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	write := func(content string) {
		if err := os.WriteFile(w.s.Users+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(w.s.Users+".tmp", w.s.Users); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ok func(testenv.Seen) bool) {
		t.Helper()
		for i := 0; i < 60; i++ {
			if ok(testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x"))) {
				return
			}
			sleep(100)
		}
		t.Fatalf("directory reload: %s never seen", what)
	}
	write("email,bms_user,tenant,tenant_name,roles\nbob@acme.example,bob,acme,Acme,admin;billing\n")
	waitFor("new roles", func(s testenv.Seen) bool { return s.Header.Get("X-BMS-Roles") == "admin,billing" })
	// A broken file keeps the previous directory.
	write("email,bms_user\nnot a valid file\n")
	sleep(2500)
	if s := testenv.DecodeSeen(t, get(t, c, w.px.URL+"/x")); s.Header.Get("X-BMS-Roles") != "admin,billing" {
		t.Fatalf("broken users file changed the directory: %v", s.Header)
	}
	// Bob removed: his session carries no identity any more.
	write("email,bms_user,tenant,tenant_name,roles\nalice@acme.example,alice,acme,Acme,admin\n")
	waitFor("bob removed", func(s testenv.Seen) bool { return s.Header.Get("X-BMS-User") == "" })
	// His still-valid cookie must not short-cut the login back to the target
	// (a redirect loop in enforce mode): the login goes to K1.
	resp := get(t, testenv.NoRedirect(c.Jar), w.px.URL+"/.k1sso/login?rd=/x")
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, w.k1.URL) {
		t.Fatalf("login with a session that lost its account went to %q, want K1", loc)
	}
}

func TestWhoami(t *testing.T) {
	w := newWorld(t)
	resp := get(t, http.DefaultClient, w.px.URL+"/.k1sso/whoami")
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("whoami without session: %d", resp.StatusCode)
	}
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	b := body(t, get(t, c, w.px.URL+"/.k1sso/whoami"))
	if !strings.Contains(b, `"bms_user":"bob"`) || !strings.Contains(b, `"tenant":"acme"`) || strings.Contains(b, "eyJ") {
		t.Fatalf("whoami: %s", b)
	}
}

func sleep(ms int) { time.Sleep(time.Duration(ms) * time.Millisecond) }
