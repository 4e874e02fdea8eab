package caddymodule_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

var hrefRE = regexp.MustCompile(`href="([^"]*)"`)

// TestRetryLinkIsLocal: the "Try again" link of the 503 page (a session
// that cannot be checked while the store is down) points at the request's
// own address only when that is a clean local path: "//evil.example/x"
// would be a link to another site.
func TestRetryLinkIsLocal(t *testing.T) {
	rd := testenv.StartRedis(t)
	h := newHostile(t, "store redis "+rd.URL)
	c, resp := h.login(t)
	h.accepted(t, resp)
	cookie := "k1sso=" + h.sessionCookie(c)
	rd.Stop()
	hrefs := func(b string) []string {
		var out []string
		for _, m := range hrefRE.FindAllStringSubmatch(b, -1) {
			out = append(out, strings.ReplaceAll(m[1], "&amp;", "&"))
		}
		return out
	}
	// Within the store's grace the session still works: wait for the 503.
	var got []string
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		resp := getWithCookie(t, h.px.URL+"/tickets?id=7", cookie)
		b := body(t, resp)
		if resp.StatusCode == http.StatusServiceUnavailable {
			got = hrefs(b)
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("no 503 while the store is down")
		}
	}
	if len(got) != 1 || got[0] != "/tickets?id=7" {
		t.Errorf("/tickets?id=7: links %q, want the page itself", got)
	}
	// Paths that are not clean may be refused before the session is looked
	// at; whatever page they get links only to local paths.
	for p, want := range map[string]string{"//evil.example/x": "/", "///evil.example/x": "/",
		"/%2F/evil.example/x": "/evil.example/x", "/..//evil.example/x": "/evil.example/x"} {
		resp := getWithCookie(t, h.px.URL+p, cookie)
		b := body(t, resp)
		links := hrefs(b)
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && (len(links) != 1 || links[0] != want):
			t.Errorf("%s: the 503 page links to %q, want %q", p, links, want)
		case resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusBadRequest:
			t.Errorf("%s: %d, want the 503 page or a 400 for a path that is not clean", p, resp.StatusCode)
		}
		for _, l := range links {
			if !strings.HasPrefix(l, "/") || strings.HasPrefix(l, "//") || strings.HasPrefix(l, "/\\") {
				t.Errorf("%s: %d page links to %q", p, resp.StatusCode, l)
			}
		}
	}
}
