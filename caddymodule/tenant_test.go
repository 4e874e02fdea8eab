package caddymodule_test

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// TestTenantPickerSessionTooLarge: a session that fits the cookie chunks
// without a tenant may not fit with the chosen one (a large ID token, a long
// tenant id). The picker then answers with a 4xx page, never a 500, and the
// browser keeps the session it had.
func TestTenantPickerSessionTooLarge(t *testing.T) {
	long := strings.Repeat("t", 128)
	users := filepath.Join(t.TempDir(), "users.csv")
	err := os.WriteFile(users, []byte("email,bms_user,tenant,tenant_name,roles\n"+
		"bob@acme.example,bob,acme,Acme,\nbob@acme.example,bob.long,"+long+",Long,\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{op: hostileop.Start(t), up: testenv.NewUpstream(t)}
	h.s = testenv.Site{K1: h.op.URL, Upstream: h.up.URL, Users: users}
	h.px = testenv.StartCaddy(t, h.s)

	// picker logs in with an ID token padded by n bytes and returns the
	// browser when it reached the tenant picker.
	picker := func(n int) (*http.Client, string) {
		h.op.Set(hostileop.Behavior{Claims: set("pad", strings.Repeat("p", n))})
		c, resp := h.login(t)
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/.k1sso/tenant" {
			return nil, ""
		}
		m := csrfRE.FindStringSubmatch(b)
		if m == nil {
			t.Fatalf("no tenant form: %.300s", b)
		}
		return c, m[1]
	}
	// The largest padding whose session still fits without a tenant.
	lo, hi := 0, 16000
	if c, _ := picker(lo); c == nil {
		t.Fatal("no tenant picker even without padding")
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; func() bool { c, _ := picker(mid); return c != nil }() {
			lo = mid
		} else {
			hi = mid
		}
	}
	t.Logf("an ID token padded by %d bytes is the largest that fits", lo)
	// 50 bytes less leave room (about 120 encoded bytes) for tenant acme,
	// not for the long one (about 240).
	c, csrf := picker(lo - 50)
	before := h.sessionCookie(c)
	resp, err := testenv.NoRedirect(c.Jar).PostForm(h.px.URL+"/.k1sso/tenant", url.Values{"csrf_token": {csrf}, "tenant": {long}, "rd": {"/dashboard"}})
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	if resp.StatusCode < 400 || resp.StatusCode >= 500 || !strings.Contains(b, "<html") {
		t.Fatalf("choosing the long tenant: %d, want a 4xx page: %.300s", resp.StatusCode, b)
	}
	if h.sessionCookie(c) != before {
		t.Error("the refused choice changed the session cookie")
	}
	// The tenant that fits still works.
	resp, err = testenv.NoRedirect(c.Jar).PostForm(h.px.URL+"/.k1sso/tenant", url.Values{"csrf_token": {csrf}, "tenant": {"acme"}, "rd": {"/dashboard"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("choosing acme: %d, want 303", resp.StatusCode)
	}
}
