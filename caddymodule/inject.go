package caddymodule

import (
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// What is injected into a page.
type injectKind int

const (
	injectLoginLink injectKind = iota + 1 // before </body> of login_path
	injectLauncher                        // after #user-name, else fixed top right
)

// nextInjected runs the rest of the route through the injecting writer (when
// injection applies) and finishes the rewritten body afterwards.
func (h *Handler) nextInjected(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, e *sessionEntry) error {
	iw := h.wrapInject(w, r, e)
	inj, ok := iw.(*injector)
	if !ok {
		return next.ServeHTTP(w, r)
	}
	defer inj.abort()
	err := next.ServeHTTP(inj, r)
	if cerr := inj.close(); cerr != nil {
		if ce := h.logger.Check(zapcore.DebugLevel, "finishing an injected page"); ce != nil {
			ce.Write(zap.String("path", r.URL.Path), zap.Error(cerr))
		}
	}
	return err
}

// wrapInject returns the writer the upstream's response goes through; it
// adds the login link and launcher icon to BMS pages. e is nil without a
// session. Where nothing can be injected, w itself comes back, so such
// requests pay nothing.
func (h *Handler) wrapInject(w http.ResponseWriter, r *http.Request, e *sessionEntry) http.ResponseWriter {
	if r.Method != http.MethodGet {
		return w
	}
	var kind injectKind
	notice := h.noticeDue(e, clockNow()) // notice.go
	switch {
	case h.injectLink && r.URL.Path == h.cfg.loginPath:
		kind = injectLoginLink
		notice = false
	case h.injectLaunch && e != nil:
		kind = injectLauncher
	case notice:
		kind = injectNotice
	default:
		return w
	}
	// WebSockets and event streams are never pages.
	if r.Header.Get("Upgrade") != "" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return w
	}
	limitAcceptEncoding(r.Header)
	inj := &injector{ResponseWriter: w, h: h, r: r, kind: kind}
	if notice {
		inj.notice = noticeHTML(r.URL.RequestURI(), e.s.Expires())
	}
	return inj
}

// limitAcceptEncoding keeps only the content codings the injector can
// decode and encode again (gzip, zstd, br), so the upstream does not answer
// a page in one it cannot rewrite (deflate, compress, ...).
func limitAcceptEncoding(hdr http.Header) {
	vals := hdr.Values("Accept-Encoding")
	if len(vals) == 0 {
		return
	}
	var keep []string
	changed := false
	for _, v := range vals {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			coding, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(coding)) {
			case "gzip", "x-gzip", "zstd", "br", "identity":
				keep = append(keep, part)
			default:
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	if len(keep) == 0 {
		hdr.Del("Accept-Encoding")
		return
	}
	hdr.Set("Accept-Encoding", strings.Join(keep, ", "))
}

// injector is the response writer that rewrites a page on its way out. It
// decides at WriteHeader: only a 200 text/html answer in a coding it can
// handle is rewritten; everything else passes through untouched.
type injector struct {
	http.ResponseWriter
	h    *Handler
	r    *http.Request
	kind injectKind
	// notice is the expiry notice to add ("" none; notice.go).
	notice string

	wroteHeader bool
	active      bool

	// mu serializes the rewriter, the encoder and the underlying writer
	// between the decoder goroutine and the handler's Flush.
	mu  sync.Mutex
	rw  *rewriter
	enc encoder  // nil: the body is not compressed
	dec *decoder // nil: the body is not compressed
}

// WriteHeader decides whether the response is rewritten, and adjusts its
// headers when it is.
func (i *injector) WriteHeader(status int) {
	if i.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		i.ResponseWriter.WriteHeader(status) // 103 Early Hints and the like
		return
	}
	i.wroteHeader = true
	if coding, ok := i.applies(status); ok {
		i.activate(coding)
	}
	i.ResponseWriter.WriteHeader(status)
}

// applies reports whether the response is a page the injector rewrites,
// and its content coding.
func (i *injector) applies(status int) (string, bool) {
	if status != http.StatusOK {
		return "", false
	}
	hdr := i.Header()
	ct := hdr.Get("Content-Type")
	// Most responses are not HTML; ParseMediaType (a map per call) is
	// only for those that may be.
	if t := strings.TrimLeft(ct, " \t"); len(t) < len("text/html") || !strings.EqualFold(t[:len("text/html")], "text/html") {
		return "", false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/html" || hdr.Get("Content-Range") != "" {
		return "", false
	}
	ces := hdr.Values("Content-Encoding")
	if len(ces) > 1 {
		return "", false
	}
	coding := ""
	if len(ces) == 1 {
		coding = strings.ToLower(strings.TrimSpace(ces[0]))
	}
	switch coding {
	case "", "identity":
		return "", true
	case "gzip", "x-gzip":
		return "gzip", true
	case "zstd", "br":
		return coding, true
	}
	return "", false
}

// activate sets up the rewriting of this response.
func (i *injector) activate(coding string) {
	hdr := i.Header()
	// The body changes: its length, validators and byte ranges no longer
	// hold.
	hdr.Del("Content-Length")
	hdr.Del("ETag")
	hdr.Del("Accept-Ranges")
	nonce := ""
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		vals := hdr.Values(name)
		if len(vals) == 0 {
			continue
		}
		if nonce == "" {
			nonce = randomID(16)
		}
		out := make([]string, len(vals))
		changed := false
		for k, v := range vals {
			var c bool
			out[k], c = cspAllowStyleNonce(v, nonce)
			changed = changed || c
		}
		if changed {
			hdr[name] = out
		}
	}
	if nonce != "" && !cspNeedsNonce(hdr, nonce) {
		nonce = ""
	}
	var out io.Writer = i.ResponseWriter
	if coding != "" {
		i.enc = newEncoder(coding, i.ResponseWriter)
		out = i.enc
	}
	i.rw = newRewriter(out, i.kind, i.snippets(nonce))
	if coding != "" {
		i.dec = startDecoder(coding, lockedWriter{&i.mu, i.rw})
	}
	i.active = true
}

// cspNeedsNonce reports whether a rewritten policy names the nonce (else
// the style element needs none).
func cspNeedsNonce(hdr http.Header, nonce string) bool {
	for _, name := range []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"} {
		for _, v := range hdr.Values(name) {
			if strings.Contains(v, "'nonce-"+nonce+"'") {
				return true
			}
		}
	}
	return false
}

// Write rewrites the body of an active response and passes any other
// through.
func (i *injector) Write(p []byte) (int, error) {
	if !i.wroteHeader {
		i.WriteHeader(http.StatusOK)
	}
	if !i.active {
		return i.ResponseWriter.Write(p)
	}
	if i.dec != nil {
		return i.dec.pw.Write(p)
	}
	return i.rw.Write(p)
}

// ReadFrom keeps io.Copy from bypassing Write on an active response.
func (i *injector) ReadFrom(src io.Reader) (int64, error) {
	if !i.wroteHeader {
		i.WriteHeader(http.StatusOK)
	}
	if !i.active {
		if rf, ok := i.ResponseWriter.(io.ReaderFrom); ok {
			return rf.ReadFrom(src)
		}
		return io.Copy(i.ResponseWriter, src)
	}
	return io.Copy(writerOnly{i}, src)
}

// Flush sends what can be sent. The rewriter keeps its small window back,
// so a marker split across a flush is still found.
func (i *injector) Flush() {
	if !i.wroteHeader {
		i.WriteHeader(http.StatusOK)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.enc != nil {
		_ = i.enc.Flush()
	}
	_ = http.NewResponseController(i.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (i *injector) Unwrap() http.ResponseWriter { return i.ResponseWriter }

// close ends an active response: the decoder drains, the rewriter writes
// its window (and the snippet if due), the encoder writes its trailer.
func (i *injector) close() error {
	if !i.active {
		return nil
	}
	var err error
	if i.dec != nil {
		_ = i.dec.pw.Close()
		err = <-i.dec.done
		i.dec = nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if e := i.rw.close(); err == nil {
		err = e
	}
	if i.rw.state == stDone {
		i.h.metrics.injectedPage(injectKindLabel(i.kind))
	}
	if i.enc != nil {
		if e := i.enc.Close(); err == nil {
			err = e
		}
	}
	i.active = false
	return err
}

// abort releases the decoder goroutine when the route ended abnormally.
func (i *injector) abort() {
	if i.dec != nil {
		_ = i.dec.pw.CloseWithError(io.ErrUnexpectedEOF)
		<-i.dec.done
		i.dec = nil
	}
}

// writerOnly hides ReadFrom, so io.Copy does not recurse.
type writerOnly struct{ io.Writer }

// lockedWriter writes under a mutex.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Interface guards
var (
	_ http.Flusher  = (*injector)(nil)
	_ io.ReaderFrom = (*injector)(nil)
)
