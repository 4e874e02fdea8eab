package caddymodule_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// streamUpstream is a BMS stand-in with an event stream (/feed) and a
// WebSocket-like tunnel (/ws: a 101, then a byte every 100 ms), both
// endless, and plain pages elsewhere.
func streamUpstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/feed":
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-store")
			rc := http.NewResponseController(w)
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(w, "data: %d %s\n\n", i, r.Header.Get("X-Bms-User")); err != nil || rc.Flush() != nil {
					return
				}
				select {
				case <-r.Context().Done():
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		case "/ws":
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-User: %s\r\n\r\n", r.Header.Get("X-Bms-User"))
			for brw.Flush() == nil {
				time.Sleep(100 * time.Millisecond)
				brw.WriteByte('.')
			}
		default:
			fmt.Fprintf(w, "page for %s", r.Header.Get("X-Bms-User"))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// openSSE opens the event stream with the session cookie and returns its
// first event and a channel that gets the time the stream ended.
func openSSE(t *testing.T, base, cookie string) (string, <-chan time.Time) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/feed", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.AddCookie(&http.Cookie{Name: "k1sso", Value: cookie})
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("event stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, br)
		ended <- time.Now()
	}()
	// A stream the proxy failed to close must not hold up the servers'
	// shutdown.
	t.Cleanup(func() { resp.Body.Close() })
	return strings.TrimSpace(first), ended
}

// openWS opens the tunnel as a browser opens a WebSocket and returns the
// X-User the upstream saw and a channel that gets the time it ended.
func openWS(t *testing.T, base, cookie string) (string, <-chan time.Time) {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-Fetch-Mode: websocket\r\nCookie: k1sso=%s\r\n\r\n", u.Host, cookie)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket handshake: %d", resp.StatusCode)
	}
	if _, err := br.ReadByte(); err != nil {
		t.Fatalf("WebSocket: no data: %v", err)
	}
	ended := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, br)
		ended <- time.Now()
	}()
	t.Cleanup(func() { conn.Close() })
	return resp.Header.Get("X-User"), ended
}

// endsWithin waits for a stream to end and checks it did within limit of
// since.
func endsWithin(t *testing.T, what string, ended <-chan time.Time, since time.Time, limit time.Duration) {
	t.Helper()
	select {
	case at := <-ended:
		t.Logf("%s ended %s after the end of its session", what, at.Sub(since))
		if at.Sub(since) > limit {
			t.Errorf("%s ended %s after the end of its session; want within %s", what, at.Sub(since), limit)
		}
	case <-time.After(limit + 3*time.Second):
		t.Errorf("%s still open %s after the end of its session", what, limit+3*time.Second)
	}
}

// Streams opened at A end within 1 s of a logout at B (redis store).
func TestStreamsEndWithTheirSessionOnAnotherInstance(t *testing.T) {
	rd := testenv.StartRedis(t)
	k1 := k1devtest.Start(t, nil)
	up := streamUpstream(t)
	users := testenv.DemoUsers(t)
	site := func() testenv.Site {
		return testenv.Site{K1: k1.URL, Upstream: up, Users: users, Options: []string{"enforce", "store redis " + rd.URL}}
	}
	a := testenv.StartProcess(t, site())
	b := testenv.StartProcess(t, site())
	cookie := loginBobAt(t, k1, b.URL)
	first, sse := openSSE(t, a.URL, cookie)
	if first != "data: 0 bob" {
		t.Fatalf("first event %q, want bob's", first)
	}
	user, ws := openWS(t, a.URL, cookie)
	if user != "bob" {
		t.Fatalf("the WebSocket reached the upstream as %q", user)
	}
	// Another user's session is not touched.
	c2 := k1devtest.NewClient()
	if _, err := k1.Login(c2, a.URL+"/.k1sso/login?rd=/x&tenant=acme", "alice", "Acme MSP", "alice-pass"); err != nil {
		t.Fatal(err)
	}
	_, other := openSSE(t, a.URL, cookieOf(c2, a.URL, "k1sso"))

	time.Sleep(500 * time.Millisecond)
	select {
	case <-sse:
		t.Fatal("the event stream ended before the logout")
	case <-ws:
		t.Fatal("the WebSocket ended before the logout")
	default:
	}
	start := time.Now()
	k1.Server.EndSessions("bob") // back-channel logout at B
	endsWithin(t, "the event stream at A", sse, start, time.Second)
	endsWithin(t, "the WebSocket at A", ws, start, time.Second)
	select {
	case <-other:
		t.Fatal("alice's stream ended with bob's logout")
	default:
	}
}

// A stream ends at its session's idle timeout: it is no use by itself.
func TestStreamEndsAtIdleTimeout(t *testing.T) {
	caddymodule.SetLifecycleUnit(t, time.Second)
	k1 := k1devtest.Start(t, nil)
	w := &world{k1: k1}
	w.s = testenv.Site{K1: k1.URL, Upstream: streamUpstream(t), Users: testenv.DemoUsers(t), Options: []string{"enforce", "session_idle_timeout 2s"}}
	w.px = testenv.StartCaddy(t, w.s)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	before := caddymodule.StreamsClosed("idle")
	opened := time.Now()
	_, sse := openSSE(t, w.px.URL, cookieOf(c, w.px.URL, "k1sso"))
	select {
	case at := <-sse:
		if d := at.Sub(opened); d < time.Second || d > 4*time.Second {
			t.Fatalf("the stream ended %s after it opened; want about the 2s idle timeout", d)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the stream outlived the idle timeout")
	}
	if got := caddymodule.StreamsClosed("idle") - before; got != 1 {
		t.Errorf("streams_closed_total{reason=idle} grew by %v, want 1", got)
	}
}

// streamsOnRedis is k1dev, one instance on a redis store in front of the
// stream upstream, and bob's session cookie.
func streamsOnRedis(t *testing.T) (*testenv.Redis, string, string) {
	t.Helper()
	rd := testenv.StartRedis(t)
	k1 := k1devtest.Start(t, nil)
	px := testenv.StartCaddy(t, testenv.Site{K1: k1.URL, Upstream: streamUpstream(t), Users: testenv.DemoUsers(t),
		Options: []string{"enforce", "store redis " + rd.URL}})
	c := k1devtest.NewClient()
	if _, err := k1.Login(c, px.URL+"/.k1sso/login?rd=/x", "bob", "Acme MSP", "bob-pass"); err != nil {
		t.Fatal(err)
	}
	return rd, px.URL, cookieOf(c, px.URL, "k1sso")
}

// Streams follow the requests of their session while the store is out of
// reach: past the store grace (5 s) a request gets a 503, because a logout
// at another instance may be missing here, so its streams are closed too,
// within the grace plus 1 s of the store going away.
func TestStreamsEndWhenStoreOutOfSync(t *testing.T) {
	rd, base, cookie := streamsOnRedis(t)
	_, sse := openSSE(t, base, cookie)
	_, ws := openWS(t, base, cookie)
	before := caddymodule.StreamsClosed("store_out_of_sync")
	rd.Stop()
	down := time.Now()
	endsWithin(t, "the event stream", sse, down, 5*time.Second+time.Second)
	endsWithin(t, "the WebSocket", ws, down, 5*time.Second+time.Second)
	if got := caddymodule.StreamsClosed("store_out_of_sync") - before; got != 2 {
		t.Errorf("streams_closed_total{reason=store_out_of_sync} grew by %v, want 2", got)
	}
	// The same verdict as a plain request of the session.
	resp := withCookie(t, base, "/x", cookie)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a request with the store out of sync: %d, want 503", resp.StatusCode)
	}
}

// A store blip shorter than the grace closes nothing.
func TestStreamsOutliveStoreBlip(t *testing.T) {
	rd, base, cookie := streamsOnRedis(t)
	_, sse := openSSE(t, base, cookie)
	rd.Stop()
	down := time.Now()
	time.Sleep(time.Second)
	rd.Start()
	select {
	case at := <-sse:
		t.Fatalf("the event stream ended %s after a 1 s store outage", at.Sub(down))
	case <-time.After(time.Until(down.Add(5*time.Second + 2*time.Second))):
	}
	resp := withCookie(t, base, "/x", cookie)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a request after the blip: %d, want 200", resp.StatusCode)
	}
}
