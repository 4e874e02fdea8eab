package k1dev_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
)

// k1Login logs user into K1 itself (no client) and returns the browser.
func k1Login(t *testing.T, e *env, user, company, password string) *http.Client {
	t.Helper()
	c := k1devtest.NewClient()
	resp, err := e.k1.Login(c, e.k1.URL+"/", user, company, password)
	if err != nil {
		t.Fatalf("K1 login: %v", err)
	}
	resp.Body.Close()
	if resp.Request.URL.String() != e.k1.URL+"/" || resp.StatusCode != http.StatusOK {
		t.Fatalf("after K1 login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return c
}

// launch follows the tenant link of page and returns the launch redirect's
// query, checking it goes to the client's initiate_login_uri.
func launch(t *testing.T, e *env, c *http.Client, page, tenant string) url.Values {
	t.Helper()
	_, _, body := get(t, c, e.k1.URL+page)
	href := "/launch/BMS/" + tenant
	if !strings.Contains(body, `class="tenant" data-module="BMS" data-tenant="`+tenant+`" href="`+href+`"`) {
		t.Fatalf("no tenant link %s on %s: %.800s", tenant, page, body)
	}
	status, loc, _ := get(t, noFollow(c), e.k1.URL+href)
	if status != http.StatusFound {
		t.Fatalf("launch: status %d", status)
	}
	u, err := url.Parse(loc)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != e.rp.URL+"/.k1sso/initiate" {
		t.Fatalf("launch went to %q", loc)
	}
	return u.Query()
}

func TestLaunch(t *testing.T) {
	e := newEnv(t, true)
	c := k1Login(t, e, "alice", "Acme MSP", "alice-pass")
	_, _, home := get(t, c, e.k1.URL+"/")
	for _, want := range []string{`id="my-modules"`, `id="k1-launcher"`, "Overview", `id="module-BMS"`} {
		if !strings.Contains(home, want) {
			t.Errorf("home page lacks %s", want)
		}
	}
	for _, page := range []string{"/modules/BMS", "/launcher"} {
		q := launch(t, e, c, page, "acme-labs")
		want := url.Values{"iss": {e.k1.URL}, "login_hint": {"alice@acme.example"}, "target_link_uri": {e.rp.URL + "/"}, "tenant": {"acme-labs"}}
		if q.Encode() != want.Encode() {
			t.Errorf("%s: launch query = %v, want %v", page, q, want)
		}
	}
	// bob has no acme-labs tenant.
	b := k1Login(t, e, "bob", "Acme MSP", "bob-pass")
	if status, loc, _ := get(t, noFollow(b), e.k1.URL+"/launch/BMS/acme-labs"); status != http.StatusNotFound || loc != "" {
		t.Errorf("bob launching acme-labs: %d %q", status, loc)
	}
	// Without a K1 session a page sends to the login first.
	if status, loc, _ := get(t, noFollow(k1devtest.NewClient()), e.k1.URL+"/launcher"); status != http.StatusFound || !strings.HasPrefix(loc, "/login?") {
		t.Errorf("launcher without session: %d %q", status, loc)
	}
}

func TestModuleURLs(t *testing.T) {
	e := newEnv(t, true)
	alice := k1Login(t, e, "alice", "Acme MSP", "alice-pass")
	bob := k1Login(t, e, "bob", "Acme MSP", "bob-pass")

	// bob sees no form, and his POST is refused.
	resp, body := fetch(t, bob, http.MethodGet, e.k1.URL+"/admin/module-urls", nil)
	if !strings.Contains(body, "Landing Page") || k1devtest.FindForm([]byte(body), "landing_page") != nil {
		t.Fatalf("bob's Module URLs page: %d %.500s", resp.StatusCode, body)
	}
	resp, body = fetch(t, bob, http.MethodPost, e.k1.URL+"/admin/module-urls", url.Values{"module": {"BMS"}, "landing_page": {"/evil"}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Only a company admin") {
		t.Fatalf("bob's POST: status %d, %.300s", resp.StatusCode, body)
	}

	// alice changes the landing page; the next launch lands there.
	_, body = fetch(t, alice, http.MethodGet, e.k1.URL+"/admin/module-urls", nil)
	f := k1devtest.FindForm([]byte(body), "landing_page")
	if f == nil {
		t.Fatalf("alice has no form: %.500s", body)
	}
	v := f.Fields()
	v.Set("landing_page", "/tickets?view=open")
	resp, body = fetch(t, alice, http.MethodPost, e.k1.URL+f.Action(), v)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="saved"`) {
		t.Fatalf("alice's POST: %d %.500s", resp.StatusCode, body)
	}
	if got := launch(t, e, alice, "/launcher", "acme").Get("target_link_uri"); got != e.rp.URL+"/tickets?view=open" {
		t.Errorf("target_link_uri = %q after the change", got)
	}
	if got := launch(t, e, bob, "/modules/BMS", "acme").Get("target_link_uri"); got != e.rp.URL+"/tickets?view=open" {
		t.Errorf("bob's target_link_uri = %q after the change", got)
	}

	// A bad CSRF token is refused; bad landing pages are refused.
	v.Set("landing_page", "/x")
	v.Set("csrf", "forged")
	if resp, body := fetch(t, alice, http.MethodPost, e.k1.URL+f.Action(), v); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "expired") {
		t.Errorf("forged csrf: status %d", resp.StatusCode)
	}
	for _, bad := range []string{"//evil.example/x", "javascript:alert(1)", `/\evil`} {
		if err := e.k1.Server.SetLandingPage("BMS", bad); err == nil {
			t.Errorf("SetLandingPage(%q) accepted", bad)
		}
	}

	// SetLandingPage (the API) works the same; absolute URLs pass as is.
	if err := e.k1.Server.SetLandingPage("BMS", "https://bms.example.com/dash"); err != nil {
		t.Fatal(err)
	}
	if got := launch(t, e, alice, "/launcher", "acme").Get("target_link_uri"); got != "https://bms.example.com/dash" {
		t.Errorf("target_link_uri = %q", got)
	}
	if err := e.k1.Server.SetLandingPage("nope", "/"); err == nil {
		t.Error("SetLandingPage of an unknown module accepted")
	}
}
