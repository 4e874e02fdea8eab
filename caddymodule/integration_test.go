package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

func TestIntegrationEnableByAdmin(t *testing.T) {
	w := newWorld(t)
	resp, err := w.k1.Login(k1devtest.NewClient(), w.px.URL+"/.k1sso/admin", "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(b, "<script") {
		t.Fatalf("admin page CSP %q or script on the page", csp)
	}
	if !strings.Contains(b, `data-tenant="acme"`) || !strings.Contains(b, `data-tenant="acme-labs"`) || !strings.Contains(b, "Never changed") {
		t.Fatalf("admin page does not list the directory's tenants:\n%s", b)
	}

	_, resp, b = w.switchAs(t, w.px.URL, "alice", "acme", true)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/.k1sso/admin" || !strings.Contains(b, doneMessage) {
		t.Fatalf("enable by alice: %d at %s:\n%s", resp.StatusCode, resp.Request.URL, b)
	}
	st, page := w.switches(t, w.px.URL)
	if !st["acme"] || !strings.Contains(page, `<span class="company">Acme MSP</span>`) ||
		!strings.Contains(page, `<span class="changed-by">alice@acme.example</span>`) {
		t.Fatalf("after enable: %v\n%s", st, page)
	}
	if strings.Contains(page, doneMessage) {
		t.Fatal("the success message shows without a change")
	}
}

func TestIntegrationChangeRefused(t *testing.T) {
	w := newWorld(t)
	unchanged := func(t *testing.T) {
		t.Helper()
		if st, page := w.switches(t, w.px.URL); !st["acme"] || strings.Count(page, "Never changed") != 2 {
			t.Fatalf("a refused change changed the state: %v", st)
		}
	}

	t.Run("non-admin", func(t *testing.T) {
		// bob cannot see the admin page; here he signs in at K1 for a
		// change alice's browser asked for.
		c, resp, b := w.switchWith(t, w.px.URL, "alice", "bob", "acme", false)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "not a BMS administrator") {
			t.Fatalf("bob switching acme off: %d\n%s", resp.StatusCode, b)
		}
		if resp := get(t, c, w.px.URL+"/.k1sso/whoami"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("whoami of bob after the refused change: %d, want 401", resp.StatusCode)
		}
		// Refused before the session was written: not even briefly.
		for _, ck := range resp.Cookies() {
			if ck.Name == "k1sso" && ck.Value != "" {
				t.Fatal("the refused admin sign-in of bob set a session cookie")
			}
		}
		unchanged(t)
	})

	t.Run("stale sign-in", func(t *testing.T) {
		caddymodule.SetReauthWindow(t, time.Nanosecond)
		c, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", false)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "Sign-in too old") {
			t.Fatalf("stale sign-in: %d\n%s", resp.StatusCode, b)
		}
		// The sign-in made for the refused change leaves no session.
		if resp := get(t, c, w.px.URL+"/.k1sso/whoami"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("whoami after a refused change: %d, want 401", resp.StatusCode)
		}
		unchanged(t)
	})

	t.Run("no CSRF token", func(t *testing.T) {
		c := k1devtest.NewClient()
		w.adminToken(t, c, w.px.URL, "alice") // the browser has the admin cookie
		for name, tok := range map[string]string{"missing": "", "wrong": "AAAA", "other browser's": w.adminToken(t, k1devtest.NewClient(), w.px.URL, "alice")} {
			resp := postSwitch(t, c, w.px.URL, "acme", false, tok)
			b := body(t, resp)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" || !strings.Contains(b, "Form expired") {
				t.Fatalf("%s token: %d Location %q", name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		unchanged(t)
	})
}

func TestIntegrationDisable(t *testing.T) {
	w := newWorld(t)
	_, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", false)
	if resp.StatusCode != 200 || !strings.Contains(b, doneMessage) {
		t.Fatalf("disable by alice: %d at %s:\n%s", resp.StatusCode, resp.Request.URL, b)
	}
	if st, page := w.switches(t, w.px.URL); st["acme"] || !st["acme-labs"] || !strings.Contains(page, "Inactive") {
		t.Fatalf("after disable: %v", st)
	}

	// SP-initiated login into acme: refused before K1, ...
	resp = spLogin(t, w.px.URL, "acme")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("/.k1sso/login?tenant=acme while off: %d, want 403", resp.StatusCode)
	}
	if resp = spLogin(t, w.px.URL, "acme-labs"); resp.StatusCode != http.StatusFound {
		t.Fatalf("/.k1sso/login?tenant=acme-labs (on): %d, want 302", resp.StatusCode)
	}
	// ... and at the callback when the login named no tenant and ends in acme.
	_, resp = w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "turned off") {
		t.Fatalf("bob's login without tenant while acme is off: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	for _, s := range w.up.Requests() {
		if s.Header.Get("X-BMS-Tenant") == "acme" {
			t.Fatalf("a request reached upstream in acme while it is off: %s", s.Path)
		}
	}
	// A launch from K1 into acme still works.
	q := url.Values{"iss": {w.k1.URL}, "tenant": {"acme"}, "target_link_uri": {w.px.URL + "/dashboard"}}
	_, resp = w.loginAs(t, "bob", "/.k1sso/initiate?"+q.Encode())
	if s := testenv.DecodeSeen(t, resp); s.Path != "/dashboard" || s.Header.Get("X-BMS-Tenant") != "acme" || s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("K1 launch into acme while it is off: %s %+v", s.Path, s.Header)
	}
	// alice, without tenant, can only enter acme-labs: she lands there.
	c, resp := w.loginAs(t, "alice", "/.k1sso/login?rd=/dashboard")
	resp.Body.Close()
	var me struct{ Tenant string }
	_ = json.Unmarshal([]byte(body(t, get(t, c, w.px.URL+"/.k1sso/whoami"))), &me)
	if me.Tenant != "acme-labs" {
		t.Fatalf("alice's login without tenant while acme is off landed in %q", me.Tenant)
	}

	// On again: bob gets in.
	if _, resp, b = w.switchAs(t, w.px.URL, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("enable again: %d", resp.StatusCode)
	}
	_, resp = w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-Tenant") != "acme" {
		t.Fatalf("bob after enabling: %+v", s)
	}
}

func TestIntegrationPickerRespectsSwitch(t *testing.T) {
	w := newWorld(t)
	// Both of alice's tenants are on: her login without tenant goes to the picker.
	c, resp := w.loginAs(t, "alice", "/.k1sso/login?rd=/dashboard")
	b := body(t, resp)
	if resp.Request.URL.Path != "/.k1sso/tenant" {
		t.Fatalf("alice without tenant: at %s, want the picker", resp.Request.URL)
	}
	tok := csrfRE.FindStringSubmatch(b)
	if tok == nil {
		t.Fatal("picker has no CSRF token")
	}
	if _, resp, _ := w.switchAs(t, w.px.URL, "alice", "acme", false); resp.StatusCode != 200 {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	resp, err := testenv.NoRedirect(c.Jar).PostForm(w.px.URL+"/.k1sso/tenant", url.Values{"csrf_token": {tok[1]}, "tenant": {"acme"}, "rd": {"/dashboard"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("picking acme while it is off: %d, want 403", resp.StatusCode)
	}
}

// companyWorld is the demo world plus dave of "Other Co", who has a BMS
// account in acme.
func companyWorld(t *testing.T) *world {
	t.Helper()
	return daveWorld(t, "dave@other.example,dave,acme,Acme,\n")
}

func TestIntegrationCompanyMismatch(t *testing.T) {
	w := companyWorld(t)
	daveLogin := func() *http.Response {
		resp, err := w.k1.Login(k1devtest.NewClient(), w.px.URL+"/.k1sso/login?tenant=acme&rd=/dashboard", "dave", "Other Co", "dave-pass")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Not linked yet (default on): any company's user with an account gets in.
	if s := testenv.DecodeSeen(t, daveLogin()); s.Header.Get("X-BMS-User") != "dave" {
		t.Fatalf("dave before linking: %+v", s.Header)
	}
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("enable: %d", resp.StatusCode)
	}
	resp := daveLogin()
	if b := body(t, resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(b, "another KaseyaOne company") {
		t.Fatalf("dave of Other Co into acme linked to Acme MSP: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	_, resp = w.loginAs(t, "bob", "/.k1sso/login?tenant=acme&rd=/dashboard")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("bob of Acme MSP after linking: %+v", s.Header)
	}
}

func TestIntegrationStateSurvivesRestartAndIsShared(t *testing.T) {
	w := newWorld(t)
	if _, resp, _ := w.switchAs(t, w.px.URL, "alice", "acme", false); resp.StatusCode != 200 {
		t.Fatalf("disable: %d", resp.StatusCode)
	}
	// A restart: the same storage, a new pooled state (another cookie secret).
	w.s.Storage = w.px.Storage
	w.s.Secrets = []string{testenv.CookieSecret + "-restarted"}
	w.reload(t)
	if resp := spLogin(t, w.px.URL, "acme"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after restart, /.k1sso/login?tenant=acme: %d, want 403", resp.StatusCode)
	}
	if st, _ := w.switches(t, w.px.URL); st["acme"] {
		t.Fatal("after restart the admin page shows acme on")
	}

	// Two instances on one storage: a second site with its own pooled
	// state, in the same Caddy.
	a := w.s
	a.Port = w.px.Port
	b := testenv.Site{K1: w.k1.URL, Upstream: w.up.URL, Users: testenv.DemoUsers(t), Storage: a.Storage,
		Secrets: []string{testenv.CookieSecret + "-instance-b"}}
	cfA, cfB := a.Caddyfile(t), b.Caddyfile(t)
	siteB := cfB[strings.Index(cfB, "\nhttp://"):]
	if err := testenv.LoadCaddyfile(cfA + siteB); err != nil {
		t.Fatalf("loading two instances: %v", err)
	}
	urlA, urlB := w.px.URL, "http://127.0.0.1:"+strconv.Itoa(b.Port)
	testenv.WaitHTTP(t, urlB+"/.k1sso/jwks.json")
	if resp := spLogin(t, urlB, "acme"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("instance B while acme is off: %d, want 403", resp.StatusCode)
	}
	if _, resp, b := w.switchAs(t, urlA, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("enable on A: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := spLogin(t, urlB, "acme")
		if resp.StatusCode == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance B still refuses acme 5 s after A enabled it: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st, _ := w.switches(t, urlB); !st["acme"] {
		t.Fatal("instance B's admin page shows acme off")
	}
}

func TestIntegrationDefaultOff(t *testing.T) {
	w := newWorld(t, "integration_default off")
	if resp := spLogin(t, w.px.URL, "acme"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("integration_default off: /.k1sso/login?tenant=acme: %d, want 403", resp.StatusCode)
	}
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("enable: %d", resp.StatusCode)
	}
	if resp := spLogin(t, w.px.URL, "acme"); resp.StatusCode != http.StatusFound {
		t.Fatalf("after enabling: %d, want 302", resp.StatusCode)
	}
	if resp := spLogin(t, w.px.URL, "acme-labs"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("acme-labs, never switched: %d, want 403", resp.StatusCode)
	}
}

func TestIntegrationDefaultOption(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "on", want: "on"},
		{in: "off", want: "off"},
		{in: "maybe", err: "integration_default takes on or off"},
		{in: "", err: "integration_default takes on or off"},
		{in: "on off", err: "integration_default takes on or off"},
	} {
		d := caddyfile.NewTestDispenser("k1sso {\n issuer http://k1\n client_id c\n client_secret s\n cookie_secret x\n users u.csv\n integration_default " + tc.in + "\n}")
		var h caddymodule.Handler
		err := h.UnmarshalCaddyfile(d)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("integration_default %q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || h.IntegrationDefault != tc.want {
			t.Errorf("integration_default %q: %v, %q", tc.in, err, h.IntegrationDefault)
		}
	}
	// JSON with a bad value fails to load, naming the option.
	w := newWorld(t)
	cf := w.s.Caddyfile(t)
	j, err := testenv.AdaptCaddyfile(cf)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(j), `"handler":"k1sso"`, `"handler":"k1sso","integration_default":"maybe"`, 1)
	if bad == string(j) {
		t.Fatal("no k1sso handler in the adapted JSON")
	}
	if err := caddy.Load([]byte(bad), true); err == nil || !strings.Contains(err.Error(), "integration_default") {
		t.Fatalf("integration_default maybe in JSON: %v", err)
	}
}

var linkRE = regexp.MustCompile(`<(a|span) id="k1sso-login-link"[^>]*>`)

// loginLink returns the opening tag of the injected login link.
func loginLink(t *testing.T, u string) string {
	t.Helper()
	b := body(t, get(t, http.DefaultClient, u))
	m := linkRE.FindString(b)
	if m == "" {
		t.Fatalf("no login link on %s:\n%s", u, b)
	}
	return m
}

func TestIntegrationLoginLinkState(t *testing.T) {
	w := &world{k1: k1devtest.Start(t, nil), up: testenv.NewUpstream(t)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: loginPageUpstream(t), Users: testenv.DemoUsers(t)}
	w.px = testenv.StartCaddy(t, w.s)
	live := func(tag string) bool {
		return strings.HasPrefix(tag, "<a ") && strings.Contains(tag, `href="/.k1sso/login`) && !strings.Contains(tag, "disabled")
	}
	disabled := func(tag string) bool {
		return strings.HasPrefix(tag, "<span ") && !strings.Contains(tag, "href") && strings.Contains(tag, `aria-disabled="true"`) &&
			strings.Contains(tag, `class="disabled"`) && strings.Contains(tag, `title="KaseyaOne sign-in is turned off for this tenant"`)
	}
	if tag := loginLink(t, w.px.URL+"/login"); !live(tag) {
		t.Fatalf("login link while every tenant is on: %s", tag)
	}
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", false); !strings.Contains(b, doneMessage) {
		t.Fatalf("disable acme: %d", resp.StatusCode)
	}
	// The page names its tenant: the link follows that tenant's switch.
	if tag := loginLink(t, w.px.URL+"/login?tenant=acme"); !disabled(tag) {
		t.Fatalf("login link of acme while acme is off: %s", tag)
	}
	if tag := loginLink(t, w.px.URL+"/login?tenant=acme-labs"); !live(tag) {
		t.Fatalf("login link of acme-labs while it is on: %s", tag)
	}
	// No tenant named, several tenants: disabled only when all are off.
	if tag := loginLink(t, w.px.URL+"/login"); !live(tag) {
		t.Fatalf("login link while acme-labs is still on: %s", tag)
	}
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme-labs", false); !strings.Contains(b, doneMessage) {
		t.Fatalf("disable acme-labs: %d", resp.StatusCode)
	}
	if tag := loginLink(t, w.px.URL+"/login"); !disabled(tag) {
		t.Fatalf("login link while every tenant is off: %s", tag)
	}
	// On again: live again.
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", true); !strings.Contains(b, doneMessage) {
		t.Fatalf("enable acme: %d", resp.StatusCode)
	}
	if tag := loginLink(t, w.px.URL+"/login?tenant=acme"); !live(tag) {
		t.Fatalf("login link of acme after enabling: %s", tag)
	}

	// One tenant in the directory: its switch decides without a tenant parameter.
	if err := os.WriteFile(w.s.Users, []byte("email,bms_user,tenant,tenant_name,roles\nalice@acme.example,alice,acme,Acme,admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.s.Secrets = []string{testenv.CookieSecret + "-one-tenant"} // a new pooled state reads the new file at once
	w.s.Storage = w.px.Storage
	w.s.Port = w.px.Port
	w.reload(t)
	if _, resp, b := w.switchAs(t, w.px.URL, "alice", "acme", false); !strings.Contains(b, doneMessage) {
		t.Fatalf("disable acme (single tenant): %d", resp.StatusCode)
	}
	if tag := loginLink(t, w.px.URL+"/login"); !disabled(tag) {
		t.Fatalf("login link of the only tenant while it is off: %s", tag)
	}
}

func TestIntegrationAdminBehindBasicAuthExample(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "admin-basic-auth.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	k1, up := k1devtest.Start(t, nil), testenv.NewUpstream(t)
	port := testenv.FreePort(t)
	t.Setenv("K1_CLIENT_ID", "bms-proxy")
	t.Setenv("K1_CLIENT_SECRET", "bms-proxy-secret")
	t.Setenv("K1SSO_COOKIE_SECRET", testenv.CookieSecret)
	cf := strings.NewReplacer(
		"admin off", "admin off\n\tstorage file_system "+t.TempDir(),
		"http://localhost:8080, http://127.0.0.1:8080", "http://127.0.0.1:"+strconv.Itoa(port),
		"bind 127.0.0.1 [::1]", "bind 127.0.0.1",
		"http://127.0.0.1:9000", k1.URL,
		"examples/users.csv", testenv.DemoUsers(t),
		"127.0.0.1:8081", strings.TrimPrefix(up.URL, "http://"),
	).Replace(string(raw))
	if err := testenv.LoadCaddyfile(cf); err != nil {
		t.Fatalf("loading the example: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	testenv.WaitHTTP(t, base+"/.k1sso/jwks.json")
	if resp := get(t, http.DefaultClient, base+"/.k1sso/admin"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin page without basic auth: %d, want 401", resp.StatusCode)
	}
	// With basic auth, the page still wants alice's K1 sign-in.
	c := k1devtest.NewClient()
	c.Transport = basicAuth{host: strings.TrimPrefix(base, "http://"), user: "bmsadmin", pass: "change-me"}
	resp, err := k1.Login(c, base+"/.k1sso/admin", "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); resp.StatusCode != 200 || !strings.Contains(b, `data-tenant="acme"`) {
		t.Fatalf("admin page with basic auth: %d", resp.StatusCode)
	}
	// The rest of the site is not behind basic auth.
	if resp := get(t, http.DefaultClient, base+"/dashboard"); resp.StatusCode != 200 {
		t.Fatalf("/dashboard: %d", resp.StatusCode)
	}
}

// basicAuth adds basic auth credentials to the requests for host.
type basicAuth struct{ host, user, pass string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == b.host {
		r = r.Clone(r.Context())
		r.SetBasicAuth(b.user, b.pass)
	}
	return http.DefaultTransport.RoundTrip(r)
}
