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
	links := func(path string) []string {
		t.Helper()
		for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(100 * time.Millisecond) {
			resp := getWithCookie(t, h.px.URL+path, cookie)
			b := body(t, resp)
			if resp.StatusCode != http.StatusServiceUnavailable {
				continue // within the store's grace the session still works
			}
			var out []string
			for _, m := range hrefRE.FindAllStringSubmatch(b, -1) {
				out = append(out, strings.ReplaceAll(m[1], "&amp;", "&"))
			}
			return out
		}
		t.Fatalf("%s: no 503 while the store is down", path)
		return nil
	}
	for p, want := range map[string]string{"//evil.example/x": "/", "///evil.example/x": "/",
		"/%2F/evil.example/x": "/evil.example/x", "/..//evil.example/x": "/evil.example/x"} {
		if got := links(p); len(got) != 1 || got[0] != want {
			t.Errorf("%s: the 503 page links to %q, want %q", p, got, want)
		}
	}
	if got := links("/tickets?id=7"); len(got) != 1 || got[0] != "/tickets?id=7" {
		t.Errorf("/tickets?id=7: links %q, want the page itself", got)
	}
}
