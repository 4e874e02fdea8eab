package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// reissued returns the session in a re-issued cookie, or nil.
func reissued(t testing.TB, h *Handler, rec *httptest.ResponseRecorder) (*session, string) {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie && c.MaxAge > 0 {
			var s session
			if err := securecookie.DecodeMulti(sessionCookie, c.Value, &s, h.shared.codecs.session...); err != nil {
				t.Fatal(err)
			}
			return &s, c.Value
		}
	}
	return nil, ""
}

func TestIdleTimeout(t *testing.T) {
	now := time.Now()
	a := idleHandler(t)

	// Used 31 minutes ago: over, whichever instance sees it first.
	if user, rec := serveWith(t, a, sessionCookieFor(t, a, "idle", now.Add(-2*time.Hour), now.Add(-31*time.Minute))); user != "" || rec.Code != http.StatusFound {
		t.Fatalf("a session idle for 31m reached BMS as %q (%d)", user, rec.Code)
	}
	// Used 10 seconds ago: kept, and the cookie is not re-issued.
	fresh := sessionCookieFor(t, a, "fresh", now.Add(-2*time.Hour), now.Add(-10*time.Second))
	if user, rec := serveWith(t, a, fresh); user != "bob" {
		t.Fatalf("a session used 10s ago is refused (%d)", rec.Code)
	} else if s, _ := reissued(t, a, rec); s != nil {
		t.Fatal("a session used 10s ago got a new cookie")
	}

	// Used 29 minutes ago: kept, and re-issued with the time of this use,
	// which another instance (its own cache) honours.
	old := sessionCookieFor(t, a, "old", now.Add(-2*time.Hour), now.Add(-29*time.Minute))
	user, rec := serveWith(t, a, old)
	s, renewed := reissued(t, a, rec)
	if user != "bob" || s == nil || s.Used < now.Unix() || s.ID != "old" || s.IDToken != "t" || s.Expires != now.Add(6*time.Hour).Unix() {
		t.Fatalf("a session used 29m ago: user %q, re-issued %+v", user, s)
	}
	b := idleHandler(t)
	b.shared.sessions.Purge()
	if user, _ := serveWith(t, b, renewed); user != "bob" {
		t.Fatal("another instance refuses the re-issued cookie")
	}
	if e, ok := a.shared.sessions.Get(keyOf(renewed)); !ok || e.s.ID() != "old" {
		t.Fatal("the re-issued cookie is not cached as the session's entry")
	}
	// The old cookie, still sent by requests already on their way, works
	// here (this instance saw the use) and gets no second new cookie.
	if user, rec := serveWith(t, a, old); user != "bob" {
		t.Fatal("the old cookie is refused right after the re-issue")
	} else if s, _ := reissued(t, a, rec); s != nil {
		t.Fatal("the old cookie got a second new cookie")
	}
	// Elsewhere the old cookie is 29m idle, and soon over: the time of use
	// travels only in the cookie.
	c := idleHandler(t)
	c.SessionIdleTimeout = caddy.Duration(28 * time.Minute)
	_ = c.provisionLifecycle()
	if user, _ := serveWith(t, c, old); user != "" {
		t.Fatal("an instance with a 28m idle timeout accepts a cookie used 29m ago")
	}
}

// Of concurrent requests carrying a session due for a new cookie, one
// re-issues it.
func TestIdleReissueOnce(t *testing.T) {
	now := time.Now()
	h := idleHandler(t)
	cookie := sessionCookieFor(t, h, "busy", now.Add(-time.Hour), now.Add(-5*time.Minute))
	// Cached already (requests racing to the very first sight of a cookie
	// decode it each, and may each re-issue it: harmless, both are valid).
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", sessionCookie+"="+cookie)
	if h.shared.lookupSession(r, false, now) == nil {
		t.Fatal("no session")
	}
	var mu sync.Mutex
	issued, served := 0, 0
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, rec := serveWith(t, h, cookie)
			s, _ := reissued(t, h, rec)
			mu.Lock()
			defer mu.Unlock()
			if user == "bob" {
				served++
			}
			if s != nil {
				issued++
			}
		}()
	}
	wg.Wait()
	if served != 32 || issued != 1 {
		t.Fatalf("32 concurrent requests: %d served, %d new cookies; want 32 and 1", served, issued)
	}
}

func TestIdleTimeoutOff(t *testing.T) {
	now := time.Now()
	h := idleHandler(t)
	h.SessionIdleTimeout = 0
	_ = h.provisionLifecycle()
	user, rec := serveWith(t, h, sessionCookieFor(t, h, "x", now.Add(-7*time.Hour), now.Add(-7*time.Hour)))
	if s, _ := reissued(t, h, rec); user != "bob" || s != nil {
		t.Fatalf("without an idle timeout: user %q, re-issued %v", user, s != nil)
	}
}

func TestLifecycleConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		idle, notice time.Duration
		want         string
	}{
		{30 * time.Second, 0, "session_idle_timeout: 30s is too short (minimum 1m)"},
		{-time.Minute, 0, "session_idle_timeout"},
		{0, -time.Minute, "expiry_notice"},
	} {
		h := &Handler{}
		h.SessionIdleTimeout, h.ExpiryNotice = caddy.Duration(tc.idle), caddy.Duration(tc.notice)
		if err := h.provisionLifecycle(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("idle %s notice %s: %v, want %q", tc.idle, tc.notice, err, tc.want)
		}
	}
}

func TestLifecycleCaddyfile(t *testing.T) {
	var h Handler
	in := minimal + "\tsession_idle_timeout 30m\n\texpiry_notice 10m\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if h.SessionIdleTimeout != caddy.Duration(30*time.Minute) || h.ExpiryNotice != caddy.Duration(10*time.Minute) {
		t.Fatalf("parsed %v %v", h.SessionIdleTimeout, h.ExpiryNotice)
	}
	for _, tc := range []struct{ in, want string }{
		{"\tsession_idle_timeout\n}", "session_idle_timeout takes exactly one duration"},
		{"\tsession_idle_timeout 1m 2m\n}", "session_idle_timeout takes exactly one duration"},
		{"\tsession_idle_timeout soon\n}", `session_idle_timeout: "soon" is not a positive duration`},
		{"\tsession_idle_timeout 0s\n}", `session_idle_timeout: "0s" is not a positive duration`},
		{"\texpiry_notice -1m\n}", `expiry_notice: "-1m" is not a positive duration`},
		{"\texpiry_notice 1m\n\texpiry_notice 2m\n}", "option expiry_notice given twice"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(minimal + tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}

// However often a session's cookie is re-issued, its entry keeps at most
// two cache keys: the cookie the client sent and the new one. A browser
// sends the newest cookie; a client that ignores Set-Cookie (a script, a
// load generator) keeps sending the first.
func TestIdleReissueKeepsTwoKeys(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sendNewest bool
	}{{"browser", true}, {"client ignoring Set-Cookie", false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := idleHandler(t)
			now := time.Now()
			cookie := sessionCookieFor(t, h, "long", now.Add(-time.Hour), now.Add(-2*time.Minute))
			for i := range 5 {
				ShiftClock(t, time.Duration(i)*2*time.Minute)
				user, rec := serveWith(t, h, cookie)
				s, renewed := reissued(t, h, rec)
				if user != "bob" || s == nil {
					t.Fatalf("use %d: user %q, re-issued %v", i, user, s != nil)
				}
				if tc.sendNewest {
					cookie = renewed
				}
				keys := 0
				for _, e := range h.shared.sessions.Values() {
					if e.s.ID() == "long" {
						keys++
					}
				}
				if want := min(i+2, 2); keys != want {
					t.Fatalf("after %d re-issues the session has %d cache keys, want %d", i+1, keys, want)
				}
			}
		})
	}
}
