package caddymodule

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/sessioncookie"
)

// The micro-benchmarks of the per-request hot path (run with
// `go test -run '^$' -bench . -benchmem ./caddymodule/`). They time the
// parts one by one; bench/cmd/loadbench times the whole proxy.

// benchRequest is a browser-like request carrying bob's session cookie
// among other cookies and headers.
func benchRequest(b *testing.B, h *Handler) *http.Request {
	b.Helper()
	now := time.Now()
	sess := &session{ID: randomID(18), Subject: "k1|bob", Email: "bob@acme.example", Name: "Bob Builder",
		SID: randomID(12), Company: "Acme MSP", Tenant: "acme", IDToken: strings.Repeat("t", 800),
		AuthTime: now.Unix(), Issued: now.Unix(), Expires: now.Add(8 * time.Hour).Unix()}
	r := httptest.NewRequest("GET", "/dashboard", nil)
	for k, v := range map[string]string{
		"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
		"Accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language": "en-US,en;q=0.9",
		"Accept-Encoding": "gzip, deflate, br",
		"Referer":         "https://bms.example/",
		"X-Requested-By":  "bench",
	} {
		r.Header.Set(k, v)
	}
	r.Header.Set("Cookie", "_ga=GA1.1.123456789.1700000000; BMSSESSION=abcdef0123456789; "+sessionCookies(b, h, sess))
	return r
}

func BenchmarkSessionLookupCached(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	now := time.Now()
	if h.shared.lookupSession(r, false, now) == nil {
		b.Fatal("no session")
	}
	b.ReportAllocs()
	for b.Loop() {
		if h.shared.lookupSession(r, false, now) == nil {
			b.Fatal("no session")
		}
	}
}

// BenchmarkSessionLookupUncached is the first request of a session: the
// cookie is decrypted, verified and decoded, then cached.
func BenchmarkSessionLookupUncached(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	now := time.Now()
	key := keyOf(sessioncookie.ReadChunked(r, sessionCookie))
	b.ReportAllocs()
	for b.Loop() {
		if h.shared.lookupSession(r, false, now) == nil {
			b.Fatal("no session")
		}
		h.shared.sessions.Remove(key)
	}
}

func BenchmarkCookieValue(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	b.ReportAllocs()
	for b.Loop() {
		if sessioncookie.ReadChunked(r, sessionCookie) == "" {
			b.Fatal("no cookie")
		}
	}
}

// BenchmarkStripIdentityHeaders strips a browser's headers with one forged
// identity header (put back every iteration).
func BenchmarkStripIdentityHeaders(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	extra := map[string]string{"X-Bench-User": "{http.auth.user.id}"}
	forged := []string{"admin"}
	b.ReportAllocs()
	for b.Loop() {
		r.Header["X-Bms-User"] = forged
		stripIdentityHeaders(r.Header, extra)
	}
	if r.Header["X-Bms-User"] != nil {
		b.Fatal("forged header kept")
	}
}

// BenchmarkSetIdentity sets the six identity headers and the placeholders.
func BenchmarkSetIdentity(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	now := time.Now()
	e := h.shared.lookupSession(r, false, now)
	d := h.identity(h.originOf(r), e, now)
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	b.ReportAllocs()
	for b.Loop() {
		h.setIdentity(r, e, d)
	}
	if r.Header.Get(hdrUser) != "bob" {
		b.Fatal("identity not set")
	}
}

func BenchmarkDirectoryLookup(b *testing.B) {
	h := benchHandler(b)
	b.ReportAllocs()
	for b.Loop() {
		if h.shared.dir.account("alice@acme.example", "acme-labs") == nil {
			b.Fatal("no account")
		}
	}
}

// BenchmarkAssertionReused is the assertion header of a known session: the
// signature is reused and only the token text is rebuilt.
func BenchmarkAssertionReused(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	now := time.Now()
	e := h.shared.lookupSession(r, false, now)
	b.ReportAllocs()
	for b.Loop() {
		d := h.identity(h.originOf(r), e, now)
		if d == nil {
			b.Fatal("no identity")
		}
		if h.shared.signer.encode(*d.issuer, e.s.Subject(), e.s.Email(), d.acc, &d.assertion) == "" {
			b.Fatal("no assertion")
		}
	}
}

// BenchmarkAssertionSign is what reuse saves: one ES256 signature.
func BenchmarkAssertionSign(b *testing.B) {
	h := benchHandler(b)
	r := benchRequest(b, h)
	now := time.Now()
	e := h.shared.lookupSession(r, false, now)
	acc := h.shared.dir.account(e.s.Email(), e.s.Tenant())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.shared.signer.sign("https://bms.example", e.s.Subject(), e.s.Email(), acc, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTPKnownSession is the whole per-request work of k1sso for
// a cached session, up to the next handler.
func BenchmarkServeHTTPKnownSession(b *testing.B) {
	h := benchHandler(b)
	h.Enforce = true
	serveKnownSession(b, h)
}

// serveKnownSession runs h.ServeHTTP on bob's cached session for the
// benchmark loop and checks the request reached the next handler with his
// identity; it returns what was written to the client.
func serveKnownSession(b *testing.B, h *Handler) *httptest.ResponseRecorder {
	r := benchRequest(b, h)
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	var called int
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called++; return nil })
	w := httptest.NewRecorder()
	// ServeHTTP strips k1sso's cookie before the upstream; put it back for
	// every round without allocating.
	cookie := r.Header.Get("Cookie")
	line := make([]string, 1)
	b.ReportAllocs()
	for b.Loop() {
		line[0] = cookie
		r.Header["Cookie"] = line
		if err := h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	if called == 0 || r.Header.Get(hdrUser) != "bob" {
		b.Fatal("request did not reach the next handler with an identity")
	}
	return w
}

// BenchmarkCacheKey compares the session cache key of a 2 KB cookie with
// the SHA-256 it replaced.
func BenchmarkCacheKey(b *testing.B) {
	raw := strings.Repeat("AbCdEfGh", 256)
	b.Run("sha256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = sha256.Sum256([]byte(raw))
		}
	})
	b.Run("maphash", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = keyOf(raw)
		}
	})
}

// BenchmarkSessionMemory reports the live heap one cached session costs
// (decoded session, LRU entry and its assertion's signature), the figure
// behind the proxy's RSS with 100,000 sessions.
func BenchmarkSessionMemory(b *testing.B) {
	h := benchHandler(b)
	const n = 20_000
	now := time.Now()
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = benchRequest(b, h)
	}
	var before, after runtime.MemStats
	for b.Loop() {
		h.shared.sessions.Purge()
		runtime.GC()
		runtime.ReadMemStats(&before)
		for _, r := range reqs {
			e := h.shared.lookupSession(r, false, now)
			if e == nil || h.identity(h.originOf(r), e, now) == nil {
				b.Fatal("no identity")
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/session")
}

// BenchmarkServeHTTPKnownSessionLifecycleOn is BenchmarkServeHTTPKnownSession
// with session_idle_timeout and expiry_notice on: a session in use, not yet
// due for a new cookie, outside the notice.
func BenchmarkServeHTTPKnownSessionLifecycleOn(b *testing.B) {
	h := benchHandler(b)
	h.Enforce = true
	h.SessionIdleTimeout = caddy.Duration(30 * time.Minute)
	h.ExpiryNotice = caddy.Duration(10 * time.Minute)
	if err := h.provisionLifecycle(); err != nil {
		b.Fatal(err)
	}
	w := serveKnownSession(b, h)
	if len(w.Result().Cookies()) != 0 {
		b.Fatal("a session in use got a new cookie on every request")
	}
}

// BenchmarkSessionMemoryReissued is BenchmarkSessionMemory for sessions
// whose cookies the idle timeout re-issued four times, used by a client
// that ignores Set-Cookie (as load generators do): the cache holds two keys
// of each session, never one per re-issue.
func BenchmarkSessionMemoryReissued(b *testing.B) {
	h := idleHandler(b)
	const n = 20_000
	now := time.Now()
	cookies := make([]string, n)
	for i := range cookies {
		cookies[i] = sessionCookieFor(b, h, fmt.Sprintf("s%d", i), now.Add(-time.Hour), now.Add(-2*time.Minute))
	}
	var before, after runtime.MemStats
	for b.Loop() {
		h.shared.sessions.Purge()
		ShiftClock(b, 0)
		runtime.GC()
		runtime.ReadMemStats(&before)
		for round := range 5 {
			ShiftClock(b, time.Duration(round)*2*time.Minute)
			for _, c := range cookies {
				if user, _ := serveWith(b, h, c); user != "bob" {
					b.Fatal("no identity")
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
	}
	if got := h.shared.sessions.Len(); got > 2*n {
		b.Fatalf("%d cache keys for %d sessions", got, n)
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/session")
}
