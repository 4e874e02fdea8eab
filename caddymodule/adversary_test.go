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

// TestPathOverrideHeadersNeverForwarded: headers that make servers behind a
// proxy route by another path than the request line's (X-Original-URL and
// X-Rewrite-URL in IIS rewrite setups, Symfony and Zend; X-Original-URI
// and X-Forwarded-Uri of auth proxies) would let a request to a public
// path reach any page in enforce mode. k1sso decides on the forwarded
// path, so none of them is forwarded, in any spelling, with or without a
// session.
func TestPathOverrideHeadersNeverForwarded(t *testing.T) {
	h := newHostile(t, "enforce", "public /static/*")
	names := []string{"X-Original-URL", "x-original-url", "X_Original_URL", "X-Rewrite-URL", "X-Original-URI", "X-Forwarded-Uri"}
	send := func(c *http.Client) testenv.Seen {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, h.px.URL+"/static/app.css", nil)
		for _, n := range names {
			req.Header[n] = []string{"/admin"} // raw keys: sent as written
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return testenv.DecodeSeen(t, resp)
	}
	check := func(what string, s testenv.Seen) {
		t.Helper()
		for k, v := range s.Header {
			n := strings.ToLower(strings.ReplaceAll(k, "_", "-"))
			if n == "x-original-url" || n == "x-rewrite-url" || n == "x-original-uri" || n == "x-forwarded-uri" {
				t.Errorf("%s: upstream got %s: %q", what, k, v)
			}
		}
	}
	check("without a session", send(http.DefaultClient))
	c, resp := h.login(t)
	h.accepted(t, resp)
	check("with a session", send(c))
}

// TestReadOnlyEndpointsRefuseOtherMethods: the key set and whoami are
// read-only; another method gets 405 with Allow, as every other k1sso
// endpoint answers a method it does not serve.
func TestReadOnlyEndpointsRefuseOtherMethods(t *testing.T) {
	h := newHostile(t)
	c, resp := h.login(t)
	h.accepted(t, resp)
	for _, ep := range []string{"jwks.json", "whoami"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, "PATCH", "FOO"} {
			req, _ := http.NewRequest(m, h.px.URL+"/.k1sso/"+ep, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s /.k1sso/%s: %d, Allow %q; want 405 with Allow: GET, HEAD", m, ep, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(m, h.px.URL+"/.k1sso/"+ep, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s /.k1sso/%s: %d, want 200", m, ep, resp.StatusCode)
			}
		}
	}
}

// TestHostileOPHugeAnswers: K1's answers are read up to a bound. A userinfo
// answer of 8 MiB (the ID token without email, so userinfo is read) refuses
// the login instead of being read whole, and so does a discovery document
// of that size (read at start and on refresh): no OP answer makes the proxy
// buffer without limit.
func TestHostileOPHugeAnswers(t *testing.T) {
	pad := strings.Repeat("a", 8<<20)
	h := newHostile(t)
	h.op.Set(hostileop.Behavior{Claims: del("email", "email_verified"), UserInfo: set("pad", pad)})
	c, resp := h.login(t)
	h.refused(t, c, resp, http.StatusBadRequest)

	op := hostileop.Start(t)
	op.SetDiscovery(func(d map[string]any) { d["pad"] = pad })
	h2 := startHostile(t, op, op.URL)
	_, resp = h2.login(t)
	if b := body(t, resp); resp.StatusCode < 500 || !strings.Contains(b, "KaseyaOne") {
		t.Errorf("login with an 8 MiB discovery document: %d %.200s; want a 5xx page saying KaseyaOne cannot be used", resp.StatusCode, b)
	}
}

// TestAdminSignInEndsWithK1Logout: the admin page's own sign-in (a purpose
// sign-in, which writes no session) is a K1 session too. A back-channel or
// front-channel logout of its sid, or a back-channel logout of the user,
// ends it at once: the admin page asks for a sign-in again, it is not
// shown for the rest of the admin cookie's half hour.
func TestAdminSignInEndsWithK1Logout(t *testing.T) {
	h := newHostile(t)
	for _, via := range []string{"back-channel sid", "front-channel sid", "back-channel sub"} {
		t.Run(via, func(t *testing.T) {
			sid := "sid-admin-" + strings.ReplaceAll(via, " ", "-")
			h.op.Set(hostileop.Behavior{Claims: func(c map[string]any) {
				c["sub"], c["email"], c["sid"] = "k1|alice", "alice@acme.example", sid
			}})
			defer h.op.Set(hostileop.Behavior{})
			c := &http.Client{Jar: newJar(), Timeout: 15 * time.Second}
			resp := get(t, c, h.px.URL+"/.k1sso/admin")
			if b := body(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(b, `data-tenant="acme"`) {
				t.Fatalf("alice on the admin page: %d at %s", resp.StatusCode, resp.Request.URL.Path)
			}
			switch via {
			case "back-channel sid":
				if code, _, m := postLogout(t, h.px.URL, h.op.LogoutToken(hostileop.Behavior{Claims: set("sub", "k1|alice")}, sid)); code != http.StatusOK {
					t.Fatalf("back-channel logout: %d %v", code, m)
				}
			case "front-channel sid":
				resp := get(t, http.DefaultClient, h.px.URL+"/.k1sso/frontchannel-logout?iss="+url.QueryEscape(h.op.Issuer())+"&sid="+sid)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("front-channel logout: %d", resp.StatusCode)
				}
			case "back-channel sub":
				if code, _, m := postLogout(t, h.px.URL, h.op.LogoutToken(hostileop.Behavior{Claims: func(c map[string]any) {
					c["sub"] = "k1|alice"
					delete(c, "sid")
				}}, "")); code != http.StatusOK {
					t.Fatalf("back-channel logout: %d %v", code, m)
				}
			}
			time.Sleep(50 * time.Millisecond) // the revocation reaches the handler's memory
			resp, err := testenv.NoRedirect(c.Jar).Get(h.px.URL + "/.k1sso/admin")
			if err != nil {
				t.Fatal(err)
			}
			b := body(t, resp)
			if resp.StatusCode != http.StatusFound || strings.Contains(b, "csrf_token") || strings.Contains(b, "alice@acme.example") {
				t.Errorf("after a %s logout the admin page answers %d (want a sign-in at K1): %.200s", via, resp.StatusCode, b)
			}
		})
	}
}

// TestLogoutPathNotBySubresources: a same-origin request to logout_path
// that no user started — an image, style or script tag, a prefetch,
// which BMS content such as a ticket's HTML may hold — does not
// end the K1 session everywhere; it gets the sign-out confirmation, and the
// session stays. Navigations (of frames too) and BMS's own scripts (fetch,
// XHR) still log out at once.
func TestLogoutPathNotBySubresources(t *testing.T) {
	h := newHostile(t, "logout_path /logout")
	c, resp := h.login(t)
	h.accepted(t, resp)
	nr := testenv.NoRedirect(c.Jar)
	same := []string{"Sec-Fetch-Site", "same-origin"}
	for _, hdr := range [][]string{
		{"Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"},
		{"Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "style"},
		{"Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "script"},
		{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Sec-Purpose", "prefetch;prerender"},
		{"Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "empty", "Sec-Purpose", "prefetch"},
		{"Purpose", "prefetch"},
	} {
		h.up.Reset()
		resp := get(t, nr, h.px.URL+"/logout", append(same, hdr...)...)
		b := body(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(b, `action="/.k1sso/logout?then=bms"`) {
			t.Errorf("%v: %d, want the sign-out confirmation", hdr, resp.StatusCode)
		}
		if len(h.up.Requests()) != 0 || len(resp.Header["Set-Cookie"]) != 0 {
			t.Errorf("%v: the logout went on (%d upstream requests, %d Set-Cookie)", hdr, len(h.up.Requests()), len(resp.Header["Set-Cookie"]))
		}
	}
	if s := testenv.DecodeSeen(t, get(t, c, h.px.URL+"/x")); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("a subresource request to logout_path ended the session")
	}
	for _, hdr := range [][]string{
		{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"},
		{"Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty"},
		{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe"},
	} {
		c, resp := h.login(t)
		h.accepted(t, resp)
		resp = get(t, testenv.NoRedirect(c.Jar), h.px.URL+"/logout", append(same, hdr...)...)
		resp.Body.Close()
		// This OP has no end_session_endpoint: the logout ends at login_path.
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
			t.Errorf("%v: %d %q, want a global logout", hdr, resp.StatusCode, resp.Header.Get("Location"))
		}
		if s := testenv.DecodeSeen(t, get(t, c, h.px.URL+"/x")); s.Header.Get("X-BMS-User") != "" {
			t.Errorf("%v: the session outlived the logout", hdr)
		}
	}
}

// TestLoginHintIsFiltered: a login_hint from a request reaches K1 only
// when it is short and free of control characters, on every way in (the
// login link as well as K1's initiate).
func TestLoginHintIsFiltered(t *testing.T) {
	w := newLaunchWorld(t)
	nr := testenv.NoRedirect(nil)
	for _, tc := range []struct {
		hint string
		sent bool
	}{
		{"bob@acme.example", true},
		{"bob@acme.example\r\nX: y", false},
		{"bob\x00@acme.example", false},
		{strings.Repeat("b", 300) + "@acme.example", false},
	} {
		for _, u := range []string{
			w.px.URL + "/.k1sso/login?rd=/x&login_hint=" + url.QueryEscape(tc.hint),
			w.initiateURL("iss", w.k1.URL, "login_hint", tc.hint, "tenant", "acme"),
		} {
			resp := get(t, nr, u)
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, w.k1.URL) {
				t.Fatalf("%q: %d %q, want a redirect to K1", u, resp.StatusCode, loc)
			}
			if sent := strings.Contains(loc, "login_hint="); sent != tc.sent {
				t.Errorf("%.60q: login_hint sent to K1 %v, want %v (%s)", tc.hint, sent, tc.sent, loc)
			}
		}
	}
}
