package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/testenv"
)

// fetchLike sends GET path as Chromium's fetch() does (Accept */*, Fetch
// Metadata cors/empty), with the k1sso cookie value when not "".
func fetchLike(t *testing.T, base, path, cookie string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	req.Header.Set("Sec-Fetch-Dest", "empty")
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "k1sso", Value: cookie})
	}
	resp, err := testenv.NoRedirect(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// isChallenge checks a 401 with WWW-Authenticate and the JSON body.
func isChallenge(t *testing.T, what string, resp *http.Response, code string) {
	t.Helper()
	defer resp.Body.Close()
	var b map[string]string
	err := json.NewDecoder(resp.Body).Decode(&b)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" || err != nil || b["error"] != code || b["login"] == "" {
		t.Fatalf("%s: %d Location %q WWW-Authenticate %q body %v (%v); want 401 %s", what, resp.StatusCode,
			resp.Header.Get("Location"), resp.Header.Get("WWW-Authenticate"), b, err, code)
	}
}

func TestNonNavigationsGet401(t *testing.T) {
	w := newWorld(t, "enforce", "public /static/*")
	isChallenge(t, "fetch() without a session", fetchLike(t, w.px.URL, "/api/tickets", ""), "unauthorized")
	for _, hdr := range [][]string{
		{"Accept", "text/event-stream", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty"},
		{"Accept", "image/avif,image/webp,*/*", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image"},
		{"Accept", "*/*", "Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "script"},
		{"Accept", "*/*"}, // a browser without Fetch Metadata, or curl
	} {
		isChallenge(t, "GET "+strings.Join(hdr, " "), get(t, testenv.NoRedirect(nil), w.px.URL+"/x", hdr...), "unauthorized")
	}
	// A page load still goes to K1.
	resp := get(t, testenv.NoRedirect(nil), w.px.URL+"/x", "Accept", "text/html", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login?rd=") {
		t.Fatalf("navigation without a session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// After a logout, a fetch() with the old cookie gets 401, not a
	// redirect to the login page.
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	old := cookieOf(c, w.px.URL, "k1sso")
	if s := testenv.DecodeSeen(t, fetchLike(t, w.px.URL, "/api/tickets", old)); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatal("fetch() with a session has no identity")
	}
	w.k1.Server.EndSessions("bob")
	isChallenge(t, "fetch() after the logout", fetchLike(t, w.px.URL, "/api/tickets", old), "session_ended")
}
