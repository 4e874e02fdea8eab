package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// TestAbuseHeaderSmuggling sends identity headers in every spelling, twice,
// and empty, with and without a session: the upstream sees only what k1sso
// set, once.
func TestAbuseHeaderSmuggling(t *testing.T) {
	h := newHostile(t)
	smuggle := func(c *http.Client) testenv.Seen {
		req, _ := http.NewRequest(http.MethodGet, h.px.URL+"/dashboard", nil)
		// Raw map keys: sent exactly as written, not canonicalised.
		req.Header["X-BMS-User"] = []string{"mallory", "mallory2"}
		req.Header["x-bms-user"] = []string{"mallory3"}
		req.Header["X_BMS_USER"] = []string{"mallory4"}
		req.Header["x_Bms-User"] = []string{""}
		req.Header["X-Bms-Tenant"] = []string{"", "evil"}
		req.Header["x-k1-email"] = []string{"mallory@evil.example"}
		req.Header["X-K1-Subject"] = []string{""}
		req.Header["X_K1_Assertion"] = []string{"forged"}
		req.Header["X-Bms-Roles"] = []string{"admin", "admin"}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.DecodeSeen(t, resp)
	}
	check := func(s testenv.Seen, want map[string]string) {
		t.Helper()
		for k, vs := range s.Header {
			if !identityLike(k) {
				continue
			}
			w, ok := want[strings.ToLower(k)]
			if !ok || len(vs) != 1 || vs[0] != w {
				t.Errorf("upstream got %s: %q", k, vs)
			}
		}
		for k := range want {
			if _, ok := s.Header[http.CanonicalHeaderKey(k)]; !ok {
				t.Errorf("upstream lacks %s", k)
			}
		}
	}
	// Without a session: no identity header at all, not even an empty one.
	check(smuggle(http.DefaultClient), nil)
	// With a session: exactly the real identity.
	c, resp := h.login(t)
	h.accepted(t, resp)
	s := smuggle(c)
	check(s, map[string]string{"x-bms-user": "bob", "x-bms-tenant": "acme", "x-bms-roles": "",
		"x-k1-email": "bob@acme.example", "x-k1-subject": "k1|bob", "x-k1-assertion": s.Header.Get("X-K1-Assertion")})
	if a := s.Header.Get("X-K1-Assertion"); a == "forged" || strings.Count(a, ".") != 2 {
		t.Error("the assertion is not k1sso's")
	}

	// A handler in the same route (here respond) sees no smuggled header
	// either. (Headers with '_' are already gone before k1sso runs in this
	// stack; k1sso's own '_' matching is a second layer for other
	// front ends.)
	h.s.Extra = `	respond /echo "[{http.request.header.X_bms_user}][{http.request.header.X_k1_assertion}][{http.request.header.X_bms_tenant}]" 200`
	h.px = testenv.StartCaddy(t, h.s)
	req, _ := http.NewRequest(http.MethodGet, h.px.URL+"/echo", nil)
	req.Header["X_BMS_USER"] = []string{"mallory"}
	req.Header["X_K1_Assertion"] = []string{"forged"}
	req.Header["x_bms_tenant"] = []string{"evil"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(t, resp); b != "[][][]" {
		t.Errorf("a handler after k1sso saw smuggled headers: %s", b)
	}
}

// TestAbuseOversizedCookies: too many chunks and a 100 KB cookie header are
// treated as no session: a redirect to login, never a 500, never an
// identity.
func TestAbuseOversizedCookies(t *testing.T) {
	h := newHostile(t, "enforce")
	nr := testenv.NoRedirect(nil)
	try := func(name, cookie string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.px.URL+"/dashboard", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := nr.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 || (resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge) {
			t.Errorf("%s: %d, want a redirect to login (or 431)", name, resp.StatusCode)
		}
		if resp.StatusCode == http.StatusFound && !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login") {
			t.Errorf("%s: redirected to %q", name, resp.Header.Get("Location"))
		}
	}
	chunk := strings.Repeat("A", 3800)
	five := "k1sso=5." + chunk
	for i := 1; i < 5; i++ {
		five += "; k1sso-" + string(rune('0'+i)) + "=" + chunk
	}
	try("five chunks", five)
	try("a 100 KB cookie", "k1sso="+strings.Repeat("B", 100_000))
	try("a 100 KB cookie header", strings.Repeat("x=y; ", 20_000)+"k1sso=abc")
	try("chunk count 99", "k1sso=99.abc; k1sso-1=def")
	try("chunk count -1", "k1sso=-1.abc")
	try("missing chunk", "k1sso=3.abc; k1sso-1=def")
	h.noIdentityUpstream(t)

	// A real session survives junk chunks and a large unrelated cookie.
	c, resp := h.login(t)
	resp.Body.Close()
	u, _ := url.Parse(h.px.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "k1sso-1", Value: chunk}, {Name: "k1sso-3", Value: chunk}, {Name: "big", Value: strings.Repeat("C", 3000)}})
	if s := testenv.DecodeSeen(t, get(t, c, h.px.URL+"/dashboard")); s.Header.Get("X-BMS-User") != "bob" {
		t.Error("junk chunks broke a valid session")
	}
}

// TestAbuseLoginFlood: one browser starting many logins keeps a bounded
// number of login-state cookies, and its last login still works.
func TestAbuseLoginFlood(t *testing.T) {
	h := newHostile(t)
	jar := newJar()
	nr := testenv.NoRedirect(jar)
	u, _ := url.Parse(h.px.URL)
	var last string
	for i := 0; i < 25; i++ {
		resp := get(t, nr, h.px.URL+"/.k1sso/login?rd=/dashboard")
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("login start %d: %d", i, resp.StatusCode)
		}
		last = resp.Header.Get("Location")
		n := 0
		for _, ck := range jar.Cookies(u) {
			if strings.HasPrefix(ck.Name, "k1sso-login-") {
				n++
			}
		}
		if n > 4 {
			t.Fatalf("after %d login starts the browser holds %d login cookies, want at most 4", i+1, n)
		}
		if hdr := resp.Header.Values("Set-Cookie"); len(hdr) > 5 {
			t.Fatalf("login start %d set %d cookies", i, len(hdr))
		}
	}
	c := &http.Client{Jar: jar, Timeout: 15 * time.Second}
	resp := get(t, c, last)
	h.accepted(t, resp)
}

// TestAbuseUnknownKidFlood: tokens with made-up kids are refused, and K1's
// JWKS is fetched at most once per interval however many arrive, for ID
// tokens and for logout tokens each.
func TestAbuseUnknownKidFlood(t *testing.T) {
	h := newHostile(t)
	h.op.Set(hostileop.Behavior{Sign: hostileop.SignUnknownKey})
	for i := 0; i < 30; i++ {
		c, resp := h.login(t)
		h.refused(t, c, resp, 400)
		if t.Failed() {
			return
		}
	}
	if n := h.op.JWKSHits(); n > 2 {
		t.Fatalf("30 tokens with unknown kids made %d JWKS fetches; want at most 2 within the interval", n)
	}
	h.op.Set(hostileop.Behavior{})
	_, resp := h.login(t)
	h.accepted(t, resp)

	// Logout tokens, which anyone can POST, have a budget of their own:
	// made-up kids (and no kid at all) make at most one fetch per interval.
	before := h.op.JWKSHits()
	for i := 0; i < 30; i++ {
		b := hostileop.Behavior{Sign: hostileop.SignUnknownKey, NoKid: i%2 == 1}
		if status, _, _ := postLogout(t, h.px.URL, h.op.LogoutToken(b, "sid-1")); status != http.StatusBadRequest {
			t.Fatalf("logout token %d with a made-up key: %d, want 400", i, status)
		}
	}
	if n := h.op.JWKSHits() - before; n > 1 {
		t.Fatalf("30 logout tokens with made-up keys made %d JWKS fetches; want at most 1 within the interval", n)
	}
}

// TestClockSkew: iat and exp get a bounded, configurable leeway.
func TestClockSkew(t *testing.T) {
	h := newHostile(t)
	try := func(name string, claims func(map[string]any), ok bool) {
		t.Helper()
		h.op.Set(hostileop.Behavior{Claims: claims})
		defer h.op.Set(hostileop.Behavior{})
		h.up.Reset()
		c, resp := h.login(t)
		if ok {
			h.accepted(t, resp)
		} else {
			h.refused(t, c, resp, 400)
		}
		if t.Failed() {
			t.Fatalf("case %s", name)
		}
	}
	now := time.Now()
	// Default 2m.
	try("exp 60s ago", set("exp", now.Add(-60*time.Second).Unix()), true)
	try("iat in 90s", set("iat", now.Add(90*time.Second).Unix()), true)
	try("exp 3m ago", set("exp", now.Add(-3*time.Minute).Unix()), false)
	try("iat in 3m", set("iat", now.Add(3*time.Minute).Unix()), false)

	h.s.Options = []string{"clock_skew 30s"}
	h.px = testenv.StartCaddy(t, h.s)
	try("30s: exp 60s ago", set("exp", time.Now().Add(-60*time.Second).Unix()), false)
	try("30s: iat in 60s", set("iat", time.Now().Add(60*time.Second).Unix()), false)
	try("30s: exp 10s ago", set("exp", time.Now().Add(-10*time.Second).Unix()), true)
	try("30s: iat in 10s", set("iat", time.Now().Add(10*time.Second).Unix()), true)

	// Bounded: more than 10m (refused by Provision), negative or no value
	// (refused by the Caddyfile parser) is a config error.
	for _, bad := range []string{"clock_skew 11m", "clock_skew -1s", "clock_skew", "clock_skew 1m 2m", "clock_skew soon"} {
		s := h.s
		s.Options = []string{bad}
		if err := testenv.LoadCaddyfile(s.Caddyfile(t)); err == nil || !strings.Contains(err.Error(), "clock_skew") {
			t.Errorf("%q: err %v, want an error naming clock_skew", bad, err)
		}
	}
}
