package caddymodule

import (
	"bufio"
	"context"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// A WebSocket or an event stream outlives the request that checked its
// session, so it is watched: once a stream is established, a ticker checks
// its session every streamCheck against what plain requests check (the
// revocation set and whether it is in sync with the store, the lifetime,
// the idle timeout), and when the session is over it cancels the request's
// context. The reverse proxy closes both sides of a WebSocket tunnel
// (HTTP/1.1 hijacked or HTTP/2 extended CONNECT) and ends an event stream
// when that context ends. Plain requests are never wrapped: only a request
// that asks for a WebSocket or an event stream is.
//
// A revocation made at another instance reaches the set at once with the
// redis store (within about a second with the caddy store), so a stream is
// closed within that plus streamCheck. While the store is out of reach a
// stream stays open for storeGrace, as its session's requests are served,
// and is closed with them.
var streamCheck = 250 * time.Millisecond

// Reasons a stream was closed, the label of streams_closed_total.
const (
	streamRevoked = "revoked" // a logout here, at K1 or at another instance; an admin revoke
	streamExpired = "expired" // session_lifetime reached (as it is now, like requests)
	streamIdle    = "idle"    // session_idle_timeout reached
	// streamStoreOutOfSync: the revocations are out of sync with the store
	// beyond storeGrace, when the session's requests get a 503.
	streamStoreOutOfSync = "store_out_of_sync"
)

// Stream metrics, process-wide like the others (see metrics.go).
var (
	streamsOpen = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "streams_open", Help: "WebSockets and event streams open with a K1 session, watched for the end of their session."})
	streamsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
		Name: "streams_closed_total", Help: "WebSockets and event streams the proxy closed because their session ended, by reason: revoked, expired, idle, store_out_of_sync."},
		[]string{"reason"})
)

// isStreamRequest reports whether a request asks for a WebSocket (HTTP/1.1
// upgrade or HTTP/2 extended CONNECT) or an event stream.
func isStreamRequest(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" || (r.Method == http.MethodConnect && r.Header.Get(":protocol") != "") {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// serveStream runs the rest of the route for a request that may become a
// stream, and watches the stream for the end of its session.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *sessionEntry) error {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sw := &streamWriter{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
	sw.begin = func() { go h.watchStream(ctx, cancel, e) }
	sw.connect = r.Method == http.MethodConnect
	return h.nextInjected(sw, r.WithContext(ctx), next, e)
}

// watchStream cancels the stream's context when its session is over, and
// returns when the context ends.
func (h *Handler) watchStream(ctx context.Context, cancel context.CancelFunc, e *sessionEntry) {
	streamsOpen.Inc()
	defer streamsOpen.Dec()
	t := time.NewTicker(streamCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			reason := h.streamOver(e, now)
			if reason == "" {
				continue
			}
			streamsClosed.WithLabelValues(reason).Inc()
			if ce := h.logger.Check(zapcore.DebugLevel, "closing a stream: its session ended or cannot be checked"); ce != nil {
				ce.Write(zap.String("reason", reason), zap.String("k1_sub", e.s.Subject()))
			}
			cancel()
			return
		}
	}
}

// streamOver is why the session of a stream is over, or "". It asks what
// the request path asks (revocationState): a stream lives exactly as long
// as a plain request of its session would be served, so a session revoked
// at another instance while the store is out of reach does not keep its
// streams past storeGrace. A revocation or an end the session certainly
// has is named before the store's doubt.
func (h *Handler) streamOver(e *sessionEntry, now time.Time) string {
	revoked, stale := h.revocationState(e)
	switch {
	case revoked:
		return streamRevoked
	case now.Unix() >= h.shared.ends(e.s.Issued(), e.s.Expires()):
		return streamExpired
	case h.idleOver(e, now):
		return streamIdle
	case stale:
		return streamStoreOutOfSync
	}
	return ""
}

// streamWriter notices that a response became a stream: a 101 or a hijack
// (WebSocket over HTTP/1.1), a 2xx to an extended CONNECT (WebSocket over
// HTTP/2), or a 2xx text/event-stream.
type streamWriter struct {
	*caddyhttp.ResponseWriterWrapper
	begin   func()
	connect bool // an extended CONNECT: its 2xx is the WebSocket
	started bool
	wrote   bool
}

func (s *streamWriter) start() {
	if !s.started {
		s.started = true
		s.begin()
	}
}

// WriteHeader starts the watch when the response is a stream.
func (s *streamWriter) WriteHeader(status int) {
	switch {
	case status == http.StatusSwitchingProtocols:
		s.start()
	case s.wrote || status < 200:
	default:
		s.wrote = true
		if status < 300 && (s.connect || isEventStream(s.Header().Get("Content-Type"))) {
			s.start()
		}
	}
	s.ResponseWriterWrapper.WriteHeader(status)
}

// Write implies a 200 as net/http does.
func (s *streamWriter) Write(p []byte) (int, error) {
	if !s.wrote {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriterWrapper.Write(p)
}

// Hijack starts the watch: the connection now belongs to a tunnel.
func (s *streamWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriterWrapper).Hijack()
	if err == nil {
		s.start()
	}
	return conn, brw, err
}

// isEventStream reports whether a Content-Type is text/event-stream.
func isEventStream(ct string) bool {
	if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "text/event-stream") {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/event-stream"
}

// Interface guards
var _ http.Hijacker = (*streamWriter)(nil)
