package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

func TestInitiateChecksIssuer(t *testing.T) {
	w := newWorld(t)
	nr := testenv.NoRedirect(nil)
	for _, iss := range []string{"", "http://evil.example", w.k1.URL + "/other", strings.ToUpper(w.k1.URL)} {
		resp := get(t, nr, w.initiateURL("iss", iss, "tenant", "acme", "target_link_uri", w.px.URL+"/tickets"))
		b := body(t, resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "Unknown sign-in issuer") {
			t.Errorf("iss=%q: %d %q, want 400 page", iss, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// POST form too.
	resp, err := nr.PostForm(w.px.URL+"/.k1sso/initiate", url.Values{"iss": {"http://evil.example"}, "tenant": {"acme"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST with wrong iss: %d", resp.StatusCode)
	}
	if n := len(w.up.Requests()); n != 0 {
		t.Errorf("upstream got %d requests", n)
	}
	// The right issuer (GET and POST) starts a login at K1 with the hint.
	resp = get(t, nr, w.initiateURL("iss", w.k1.URL, "login_hint", "bob@acme.example", "tenant", "acme"))
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, w.k1.URL) || !strings.Contains(loc, "login_hint=bob%40acme.example") {
		t.Errorf("right iss: %d %q", resp.StatusCode, loc)
	}
	resp, err = nr.PostForm(w.px.URL+"/.k1sso/initiate", url.Values{"iss": {w.k1.URL}, "tenant": {"acme"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), w.k1.URL) {
		t.Errorf("POST with right iss: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestInitiateTargetOutsideExternalLandsOnLandingPage(t *testing.T) {
	w := newWorld(t, "landing_page /dashboard")
	// A fresh browser through the whole login.
	_, resp := w.loginAs(t, "bob", strings.TrimPrefix(w.initiateURL("iss", w.k1.URL, "tenant", "acme",
		"target_link_uri", "https://evil.example/steal"), w.px.URL))
	if s := testenv.DecodeSeen(t, resp); resp.Request.URL.Host != strings.TrimPrefix(w.px.URL, "http://") || s.Path != "/dashboard" {
		t.Fatalf("launch with a foreign target ended at %s (upstream path %q)", resp.Request.URL, s.Path)
	}
	// With a session: each target, hop by hop.
	c, _ := w.loginAs(t, "bob", "/.k1sso/login")
	nr := testenv.NoRedirect(c.Jar)
	for target, want := range map[string]string{
		"https://evil.example/steal":                           "/dashboard",
		"//evil.example/x":                                     "/dashboard",
		strings.Replace(w.px.URL, "http:", "https:", 1) + "/x": "/dashboard", // other scheme
		"http://127.0.0.1:1/tickets":                           "/dashboard", // other port
		w.px.URL + "/tickets?id=7":                             "/tickets?id=7",
		w.px.URL + "/a/../tickets":                             "/tickets",
		"":                                                     "/dashboard",
	} {
		resp := get(t, nr, w.initiateURL("iss", w.k1.URL, "tenant", "acme", "target_link_uri", target))
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != want {
			t.Errorf("target_link_uri=%q: %d %q, want %q", target, resp.StatusCode, loc, want)
		}
	}
}

func TestInitiateUnknownTenant(t *testing.T) {
	w := newWorld(t)
	nr := testenv.NoRedirect(nil)
	for tenant, want := range map[string]int{"nosuch": http.StatusForbidden, "bad tenant<>": http.StatusBadRequest} {
		resp := get(t, nr, w.initiateURL("iss", w.k1.URL, "tenant", tenant))
		b := body(t, resp)
		if resp.StatusCode != want || !strings.Contains(b, "Unknown tenant") {
			t.Errorf("tenant %q: %d, want %d", tenant, resp.StatusCode, want)
		}
	}
}

func TestInitiateExistingSessionShortcut(t *testing.T) {
	w := newWorld(t)
	c, _ := w.loginAs(t, "alice", "/.k1sso/login?tenant=acme")
	nr := testenv.NoRedirect(c.Jar)

	// Same tenant: straight to the target, no round trip to K1.
	resp := get(t, nr, w.initiateURL("iss", w.k1.URL, "login_hint", "alice@acme.example", "tenant", "acme", "target_link_uri", w.px.URL+"/tickets"))
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "/tickets" {
		t.Fatalf("same tenant: %d %q, want 302 /tickets", resp.StatusCode, loc)
	}
	// Another tenant: a new login at K1 with the hint, which K1 (already
	// signed in) answers without a form, landing in that tenant.
	u := w.initiateURL("iss", w.k1.URL, "login_hint", "alice@acme.example", "tenant", "acme-labs", "target_link_uri", w.px.URL+"/tickets")
	resp = get(t, nr, u)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, w.k1.URL) || !strings.Contains(loc, "login_hint=alice%40acme.example") {
		t.Fatalf("other tenant: %d %q, want a login at K1 with login_hint", resp.StatusCode, loc)
	}
	resp = get(t, c, u)
	s := testenv.DecodeSeen(t, resp)
	if s.Path != "/tickets" || s.Header.Get("X-Bms-Tenant") != "acme-labs" || s.Header.Get("X-Bms-User") != "alice.labs" {
		t.Fatalf("after the other-tenant launch: %s tenant %q user %q", s.Path, s.Header.Get("X-Bms-Tenant"), s.Header.Get("X-Bms-User"))
	}
	// A launch for another K1 user does not reuse this browser's session.
	resp = get(t, nr, w.initiateURL("iss", w.k1.URL, "login_hint", "bob@acme.example", "tenant", "acme-labs"))
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, w.k1.URL) {
		t.Fatalf("launch for another user: %q, want a login at K1", loc)
	}
}

func TestLaunchFromK1LandsOnLandingPage(t *testing.T) {
	w := newLaunchWorld(t)
	if err := w.k1.Server.SetLandingPage("BMS", "/tickets"); err != nil {
		t.Fatal(err)
	}
	c := k1devtest.NewClient()
	resp, err := w.k1.Login(c, w.k1.URL+"/", "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatalf("K1 login: %v", err)
	}
	resp.Body.Close()

	// My Modules → BMS → acme-labs, then the app launcher → acme.
	for _, tt := range []struct{ page, tenant, user string }{
		{"/modules/BMS", "acme-labs", "alice.labs"},
		{"/launcher", "acme", "alice"},
	} {
		href := "/launch/BMS/" + tt.tenant
		if b := body(t, get(t, c, w.k1.URL+tt.page)); !strings.Contains(b, `href="`+href+`"`) {
			t.Fatalf("%s has no link %s", tt.page, href)
		}
		resp := get(t, c, w.k1.URL+href)
		if resp.Request.URL.Host != strings.TrimPrefix(w.px.URL, "http://") {
			t.Fatalf("launch from %s ended at %s", tt.page, resp.Request.URL)
		}
		s := testenv.DecodeSeen(t, resp)
		if s.Path != "/tickets" || s.Header.Get("X-Bms-Tenant") != tt.tenant || s.Header.Get("X-Bms-User") != tt.user ||
			s.Header.Get("X-K1-Email") != "alice@acme.example" {
			t.Fatalf("launch from %s: upstream %s tenant %q user %q", tt.page, s.Path, s.Header.Get("X-Bms-Tenant"), s.Header.Get("X-Bms-User"))
		}
	}
	// Without a landing page at K1, K1 sends the module root.
	if err := w.k1.Server.SetLandingPage("BMS", ""); err != nil {
		t.Fatal(err)
	}
	if s := testenv.DecodeSeen(t, get(t, c, w.k1.URL+"/launch/BMS/acme")); s.Path != "/" {
		t.Fatalf("launch without a landing page: %s", s.Path)
	}
}

func TestLauncherRedirect(t *testing.T) {
	w := newWorld(t)
	nr := testenv.NoRedirect(nil)
	resp := get(t, nr, w.px.URL+"/.k1sso/launcher")
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != w.k1.URL+"/launcher" {
		t.Fatalf("launcher: %d %q", resp.StatusCode, loc)
	}
	w.s.Options = []string{"launcher_url https://apps.k1.example/launcher?x=1"}
	w.reload(t)
	resp = get(t, nr, w.px.URL+"/.k1sso/launcher")
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://apps.k1.example/launcher?x=1" {
		t.Fatalf("launcher_url: %d %q", resp.StatusCode, loc)
	}
}

func TestLaunchOptionsParse(t *testing.T) {
	k1 := "http://127.0.0.1:1"
	site := func(opt string) string {
		return "http://127.0.0.1:1 {\n\tk1sso {\n\t\tissuer " + k1 + "\n\t\tclient_id a\n\t\tclient_secret b\n\t\tcookie_secret " +
			testenv.CookieSecret + "\n\t\tusers /x.csv\n\t\t" + opt + "\n\t}\n}\n"
	}
	for opt, want := range map[string]string{
		"inject_login_link off":                    `"inject_login_link":false`,
		"inject_launcher on":                       `"inject_launcher":true`,
		"launcher_url https://k1.example/apps":     `"launcher_url":"https://k1.example/apps"`,
		"inject_launcher maybe":                    "inject_launcher takes on or off",
		"inject_login_link":                        "inject_login_link takes on or off",
		"launcher_url https://a.example https://b": "launcher_url takes exactly one value",
	} {
		js, err := testenv.AdaptCaddyfile(site(opt))
		got := string(js)
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: got %s, want %s", opt, got, want)
		}
	}
}
