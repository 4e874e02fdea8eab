package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/store"
)

// Only requests asking for a WebSocket or an event stream are wrapped.
func TestPlainRequestsNotTracked(t *testing.T) {
	h := idleHandler(t)
	now := time.Now()
	cookie := sessionCookieFor(t, h, "s", now.Add(-time.Minute), now)
	for _, tc := range []struct {
		hdr     []string
		wrapped bool
	}{
		{[]string{"Accept", "text/html"}, false},
		{[]string{"Accept", "*/*", "Sec-Fetch-Mode", "cors"}, false},
		{[]string{"Accept", "text/event-stream"}, true},
		{[]string{"Upgrade", "websocket", "Connection", "Upgrade"}, true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		for i := 0; i+1 < len(tc.hdr); i += 2 {
			r.Header.Set(tc.hdr[i], tc.hdr[i+1])
		}
		r.Header.Set("Cookie", sessionCookie+"="+cookie)
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
		var wrapped, called bool
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			_, wrapped = w.(*streamWriter)
			called = true
			return nil
		})
		if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil || !called {
			t.Fatalf("%v: %v, called %v", tc.hdr, err, called)
		}
		if wrapped != tc.wrapped {
			t.Errorf("%v: wrapped %v, want %v", tc.hdr, wrapped, tc.wrapped)
		}
	}
}

func TestStreamOver(t *testing.T) {
	h := idleHandler(t)
	h.shared.revocations = newRevocationSet()
	now := time.Now()
	h.shared.revocations.Synced(now)
	entry := func(id string, issued, expires, used time.Time) *sessionEntry {
		c, _ := newCachedSession(&session{ID: id, Subject: "k1|bob", Issued: issued.Unix(), Expires: expires.Unix()})
		e := &sessionEntry{s: c}
		e.used.Store(uint32(used.Unix()))
		return e
	}
	live := entry("live", now.Add(-time.Hour), now.Add(time.Hour), now)
	if got := h.streamOver(live, now); got != "" {
		t.Fatalf("a live session's stream is over: %s", got)
	}
	if got := h.streamOver(entry("old", now.Add(-2*time.Hour), now.Add(-time.Second), now), now); got != streamExpired {
		t.Errorf("expired session: %q", got)
	}
	if got := h.streamOver(entry("idle", now.Add(-2*time.Hour), now.Add(time.Hour), now.Add(-31*time.Minute)), now); got != streamIdle {
		t.Errorf("idle session: %q", got)
	}
	h.shared.revocations.Add(store.Revocation{Kind: store.KindID, Value: "live", Expires: now.Add(time.Hour).Unix()})
	if got := h.streamOver(live, now); got != streamRevoked {
		t.Errorf("revoked session: %q", got)
	}
}

// A stream follows its session's requests while the store is out of sync:
// within the grace they are served, so it stays open; past it they get a
// 503, so it is closed. The verdict is the request path's, revocationState.
func TestStreamOverStoreOutOfSync(t *testing.T) {
	h := idleHandler(t)
	h.shared.revocations = newRevocationSet()
	now := time.Now()
	c, _ := newCachedSession(&session{ID: "s", Subject: "k1|bob", Issued: now.Add(-time.Hour).Unix(), Expires: now.Add(time.Hour).Unix()})
	e := &sessionEntry{s: c}
	e.used.Store(uint32(now.Unix()))
	for _, tc := range []struct {
		synced time.Duration // before now
		want   string
	}{
		{0, ""},
		{storeGrace - time.Second, ""}, // a blip shorter than the grace
		{storeGrace + 100*time.Millisecond, streamStoreOutOfSync},
		{time.Minute, streamStoreOutOfSync},
	} {
		h.shared.revocations.syncedAt.Store(0)
		h.shared.revocations.Synced(time.Now().Add(-tc.synced))
		if _, stale := h.revocationState(e); stale != (tc.want != "") {
			t.Fatalf("synced %s ago: the request path says stale=%v", tc.synced, stale)
		}
		if got := h.streamOver(e, now); got != tc.want {
			t.Errorf("synced %s ago: stream over %q, want %q", tc.synced, got, tc.want)
		}
	}
	// A revocation the instance knows is named as such, in sync or not.
	h.shared.revocations.Add(store.Revocation{Kind: store.KindID, Value: "s", Expires: now.Add(time.Hour).Unix()})
	if got := h.streamOver(e, now); got != streamRevoked {
		t.Errorf("revoked while out of sync: %q", got)
	}
}

func TestStreamWriterNotices(t *testing.T) {
	for _, tc := range []struct {
		connect bool
		ctype   string
		status  int
		want    bool
	}{
		{false, "text/event-stream; charset=utf-8", 200, true},
		{false, "text/html", 200, false},
		{false, "text/event-stream", 401, false},
		{false, "", 101, true},
		{true, "", 200, true},
		{false, "", 200, false},
	} {
		started := false
		sw := &streamWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: httptest.NewRecorder()},
			begin: func() { started = true }, connect: tc.connect}
		if tc.ctype != "" {
			sw.Header().Set("Content-Type", tc.ctype)
		}
		sw.WriteHeader(tc.status)
		if started != tc.want {
			t.Errorf("%+v: watch started %v", tc, started)
		}
	}
}
