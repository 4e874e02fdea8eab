package caddymodule_test

import (
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	noticeRE = regexp.MustCompile(`<div id="k1sso-expiry" role="status" data-ends="(\d+)">Your KaseyaOne session ends at <time datetime="[^"]+">\d\d:\d\d [A-Z+\-0-9]+</time> — <a id="k1sso-renew" href="([^"]+)">Stay signed in</a></div>`)
)

func TestExpiryNotice(t *testing.T) {
	// A one-minute session with a one-minute notice: every page has it.
	w, _ := injectWorld(t, "session_lifetime 1m", "expiry_notice 1m", "inject_launcher off")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	old := cookieOf(c, w.px.URL, "k1sso")
	csp := "default-src 'self'"
	r := fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard?csp="+strings.ReplaceAll(csp, " ", "+"))
	m := noticeRE.FindStringSubmatch(string(r.body))
	if r.status != http.StatusOK || m == nil {
		t.Fatalf("no expiry notice on the page: %d\n%s", r.status, r.body)
	}
	// CSP-safe: no script, no style attribute, the style element allowed
	// by a nonce the policy names.
	n := nonceRE.FindStringSubmatch(string(r.body))
	if n == nil || !strings.Contains(r.header.Get("Content-Security-Policy"), "'nonce-"+n[1]+"'") || strings.Contains(m[0], "style=") || strings.Contains(string(r.body), "<script") {
		t.Fatalf("notice not CSP-safe: policy %q\n%s", r.header.Get("Content-Security-Policy"), r.body)
	}
	href := html.UnescapeString(m[2])
	if !strings.HasPrefix(href, "/.k1sso/login?renew=1&rd=%2Fdashboard%3Fcsp%3D") {
		t.Fatalf("renew link %q does not come back to the page", href)
	}
	// Not on what is no page.
	if r := fetchRaw(t, c.Jar, "GET", w.px.URL+"/data.json"); strings.Contains(string(r.body), "k1sso-expiry") {
		t.Fatal("notice in a JSON answer")
	}

	// The link renews the session through K1 (silently: K1's session
	// lives) and comes back to the same page.
	time.Sleep(1100 * time.Millisecond) // a new session ends a second later at least
	resp, err := c.Get(w.px.URL + href)
	if err != nil {
		t.Fatal(err)
	}
	b := body(t, resp)
	if resp.Request.URL.Path != "/dashboard" || resp.Request.URL.Query().Get("csp") != csp {
		t.Fatalf("after renewing, the browser is at %s", resp.Request.URL)
	}
	if cookieOf(c, w.px.URL, "k1sso") == old {
		t.Fatal("renewing kept the old session cookie")
	}
	if m2 := noticeRE.FindStringSubmatch(b); m2 == nil || m2[1] <= m[1] {
		t.Fatalf("after renewing, the session ends at %v, before at %s", m2, m[1])
	}

	// With the launcher on, the notice comes with it.
	w.s.Options = []string{"session_lifetime 1m", "expiry_notice 1m"}
	w.reload(t)
	r = fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard")
	if !noticeRE.Match(r.body) || !strings.Contains(string(r.body), `id="k1sso-launcher"`) {
		t.Fatalf("launcher and notice: \n%s", r.body)
	}
}

func TestExpiryNoticeOnlyAtTheEnd(t *testing.T) {
	w, _ := injectWorld(t, "expiry_notice 10m", "inject_launcher off")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	if r := fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard"); r.status != http.StatusOK || strings.Contains(string(r.body), "k1sso-expiry") {
		t.Fatalf("notice on a page of a fresh 8h session: %d\n%s", r.status, r.body)
	}
}
