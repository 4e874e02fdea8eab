package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/store"
)

// What ServeHTTP answers for each kind of session and request, without
// Caddy: the status, where it sends the browser, whether it challenges,
// and whether the route after k1sso runs and with whose identity.
func TestServeHTTPTable(t *testing.T) {
	t.Parallel()
	type want struct {
		status    int
		location  string // prefix; "" = no Location
		challenge bool   // WWW-Authenticate
		next      string // "" = next not called; "-" = called without identity; else its X-Bms-User
	}
	const replay = "%2F.k1sso%2Freplay"
	rows := []struct {
		name string
		// configure sets the options; session is the browser's (nil: none);
		// setup changes the pooled state before the request.
		configure func(*Handler)
		session   *session
		setup     func(h *Handler, s *session)
		path      string
		nav, xhr  want
		post      want
	}{
		{name: "no session", path: "/dashboard",
			nav:  want{status: http.StatusFound, location: "/.k1sso/login?rd=%2Fdashboard"},
			xhr:  want{status: http.StatusUnauthorized, challenge: true},
			post: want{status: http.StatusSeeOther, location: "/.k1sso/login?rd=" + replay}},
		{name: "no session, enforce off", path: "/dashboard", configure: func(h *Handler) { h.Enforce = false },
			nav: want{status: http.StatusOK, next: "-"}, xhr: want{status: http.StatusOK, next: "-"}, post: want{status: http.StatusOK, next: "-"}},
		{name: "no tenant", path: "/dashboard", session: testSession("alice", ""),
			nav:  want{status: http.StatusFound, location: "/.k1sso/tenant?rd=%2Fdashboard"},
			xhr:  want{status: http.StatusUnauthorized, challenge: true},
			post: want{status: http.StatusSeeOther, location: "/.k1sso/tenant?rd=" + replay}},
		{name: "revoked", path: "/dashboard", session: testSession("bob", "acme"),
			setup: func(h *Handler, s *session) {
				h.shared.revocations.Add(store.Revocation{Kind: store.KindID, Value: s.ID, Expires: s.Expires})
			},
			nav:  want{status: http.StatusFound, location: "/login"},
			xhr:  want{status: http.StatusUnauthorized, challenge: true},
			post: want{status: http.StatusSeeOther, location: "/.k1sso/login?rd=" + replay}},
		{name: "store stale", path: "/dashboard", session: testSession("bob", "acme"),
			setup: func(h *Handler, _ *session) {
				h.shared.revocations.syncedAt.Store(time.Now().Add(-time.Minute).UnixNano())
			},
			nav:  want{status: http.StatusServiceUnavailable},
			xhr:  want{status: http.StatusServiceUnavailable},
			post: want{status: http.StatusServiceUnavailable}},
		{name: "logout_path", path: "/logout", session: testSession("bob", "acme"),
			configure: func(h *Handler) { h.LogoutPath = "/logout" },
			nav:       want{status: http.StatusFound, location: testEndSession + "?", next: "bob"},
			xhr:       want{status: http.StatusFound, location: testEndSession + "?", next: "bob"},
			post:      want{status: http.StatusSeeOther, location: testEndSession + "?", next: "bob"}},
		{name: "public", path: "/public/x", configure: func(h *Handler) { h.Public = []string{"/public/*"} },
			nav: want{status: http.StatusOK, next: "-"}, xhr: want{status: http.StatusOK, next: "-"}, post: want{status: http.StatusOK, next: "-"}},
		{name: "enforce, active session", path: "/dashboard", session: testSession("bob", "acme"),
			nav: want{status: http.StatusOK, next: "bob"}, xhr: want{status: http.StatusOK, next: "bob"}, post: want{status: http.StatusOK, next: "bob"}},
	}
	for _, row := range rows {
		for _, kind := range []string{"navigation", "XHR", "POST"} {
			w := map[string]want{"navigation": row.nav, "XHR": row.xhr, "POST": row.post}[kind]
			t.Run(row.name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				h := newTestHandler(t, row.configure)
				var sess *session
				if row.session != nil {
					c := *row.session
					c.ID = randomID(18) // each subtest its own session
					sess = &c
				}
				if row.setup != nil {
					row.setup(h, sess)
				}
				r := tableRequest(kind, row.path)
				r.Header.Set("X-Bms-User", "mallory") // forged: must never reach next
				if sess != nil {
					r.Header.Set("Cookie", sessionCookies(t, h, sess)+"; bms=1")
				}
				rec := httptest.NewRecorder()
				next := &recordingNext{}
				if err := h.ServeHTTP(rec, r, next); err != nil {
					t.Fatalf("ServeHTTP: %v", err)
				}
				if rec.Code != w.status {
					t.Fatalf("status %d, want %d: %.200s", rec.Code, w.status, rec.Body.String())
				}
				if loc := rec.Header().Get("Location"); w.location == "" && loc != "" || !strings.HasPrefix(loc, w.location) {
					t.Fatalf("Location %q, want %q…", loc, w.location)
				}
				if got := rec.Header().Get("WWW-Authenticate") != ""; got != w.challenge {
					t.Fatalf("WWW-Authenticate %q, want one: %v", rec.Header().Get("WWW-Authenticate"), w.challenge)
				}
				switch {
				case w.next == "" && next.got != nil:
					t.Fatalf("next was called for %s", next.got.URL.Path)
				case w.next == "":
				case next.got == nil:
					t.Fatalf("next was not called")
				default:
					user := next.got.Header.Get("X-Bms-User")
					if w.next == "-" && user != "" || w.next != "-" && user != w.next {
						t.Fatalf("next got X-Bms-User %q, want %q", user, w.next)
					}
					if w.next != "-" && (next.got.Header.Get("X-Bms-Tenant") != "acme" || next.got.Header.Get("X-K1-Email") != w.next+"@acme.example") {
						t.Fatalf("next got identity %v", next.got.Header)
					}
					if c := next.got.Header.Get("Cookie"); strings.Contains(c, sessionCookie) || !strings.Contains(c, "bms=1") && sess != nil {
						t.Fatalf("next got cookies %q", c)
					}
				}
			})
		}
	}
}

// tableRequest is a browser's request of kind: a page navigation, a
// script's API call, or a form post, all from the site itself.
func tableRequest(kind, path string) *http.Request {
	var r *http.Request
	switch kind {
	case "navigation":
		r = httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		r.Header.Set("Sec-Fetch-Dest", "document")
		r.Header.Set("Sec-Fetch-User", "?1")
	case "XHR":
		r = httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Accept", "application/json")
		r.Header.Set("X-Requested-With", "XMLHttpRequest")
		r.Header.Set("Sec-Fetch-Mode", "cors")
		r.Header.Set("Sec-Fetch-Dest", "empty")
	case "POST":
		r = httptest.NewRequest(http.MethodPost, path, strings.NewReader("note=hello"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://example.com")
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		r.Header.Set("Sec-Fetch-Dest", "document")
	}
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	return r
}

// The clock given to the pooled state is the one sessions end by: the same
// cookie carries bob now and nothing nine hours on (sessions last eight).
func TestInjectedClockGovernsSessions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		shift time.Duration
		want  string
	}{{"now", 0, "bob"}, {"nine hours on", 9 * time.Hour, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newTestHandlerAt(t, func() time.Time { return time.Now().Add(tc.shift) }, nil)
			r := tableRequest("XHR", "/dashboard")
			r.Header.Set("Cookie", sessionCookies(t, h, testSession("bob", "acme")))
			next := &recordingNext{}
			if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
				t.Fatal(err)
			}
			user := ""
			if next.got != nil {
				user = next.got.Header.Get("X-Bms-User")
			}
			if user != tc.want {
				t.Fatalf("the upstream got X-Bms-User %q, want %q", user, tc.want)
			}
		})
	}
}
