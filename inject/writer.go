// Package inject adds markup to the HTML pages a Caddy route answers, as
// they stream by: a response writer that decides at WriteHeader whether
// the response is a page it can rewrite (a 200 text/html answer, plain or
// in gzip, zstd or br), inserts the caller's snippet after an element or
// before </body> through a bounded window, and lets the snippet's one
// <style> element through the page's Content-Security-Policy with a
// fresh nonce that never allows a script. Everything else passes through
// untouched. What the snippet says is the caller's business.
package inject

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Page is what one HTML page gets, and where.
type Page struct {
	// CSS goes into one <style> element ahead of the markup, with the
	// nonce the page's CSP now allows for style elements when it restricts
	// them: style attributes cannot be allowed by a nonce, so the markup
	// should carry none. It must not contain "</style". "" adds no style
	// element and leaves the CSP alone.
	CSS string

	// AfterID is the id of the element the markup follows: right after
	// its end tag, or after its tag for a void element. At most
	// MaxIDLength bytes; "" (or a page without that element before
	// </body>) puts BeforeBodyEnd before </body>.
	AfterID string

	// After is the markup that follows the AfterID element.
	After string

	// BeforeBodyEnd is the markup before </body> of a page without the
	// AfterID element.
	BeforeBodyEnd string
}

// PageRequest reports whether r may be answered with a page the writer
// rewrites: a GET that asks for no WebSocket and no event stream. Other
// requests need no writer, so they pay nothing.
func PageRequest(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get("Upgrade") == "" &&
		!strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// Writer is the response writer that rewrites a page on its way out. It
// embeds Caddy's ResponseWriterWrapper, so http.ResponseController, Push
// and the writers Caddy wraps it in reach the underlying writer. Only a
// 200 text/html answer in a coding it can handle is rewritten; everything
// else passes through untouched.
type Writer struct {
	*caddyhttp.ResponseWriterWrapper

	page  func() Page
	nonce func() string

	wroteHeader bool
	active      bool
	injected    bool

	// mu serializes the rewriter, the encoder and the underlying writer
	// between the decoder goroutine and the handler's Flush.
	mu  sync.Mutex
	rw  *rewriter
	enc encoder  // nil: the body is not compressed
	dec *decoder // nil: the body is not compressed
}

// New returns the writer for r's response on w. page is called at most
// once, when the response turns out to be a page to rewrite, so what it
// costs is paid only then. New limits r's Accept-Encoding to the codings
// the writer can decode and encode again: call it before r goes on. The
// caller must Close the writer after the route, and Abort it if the route
// may end abnormally (defer w.Abort()).
func New(w http.ResponseWriter, r *http.Request, page func() Page) *Writer {
	LimitAcceptEncoding(r.Header)
	return &Writer{ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w}, page: page, nonce: newNonce}
}

// newNonce returns a CSP nonce: 128 random bits.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// LimitAcceptEncoding keeps only the content codings the writer can
// decode and encode again (gzip, zstd, br), so the upstream does not
// answer a page in one it cannot rewrite (deflate, compress, ...).
func LimitAcceptEncoding(hdr http.Header) {
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

// WriteHeader decides whether the response is rewritten, and adjusts its
// headers when it is.
func (w *Writer) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(status) // 103 Early Hints and the like
		return
	}
	w.wroteHeader = true
	if coding, ok := w.applies(status); ok {
		w.activate(coding)
	}
	w.ResponseWriter.WriteHeader(status)
}

// applies reports whether the response is a page the writer rewrites, and
// its content coding.
func (w *Writer) applies(status int) (string, bool) {
	if status != http.StatusOK {
		return "", false
	}
	hdr := w.Header()
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
func (w *Writer) activate(coding string) {
	hdr := w.Header()
	// The body changes: its length, validators and byte ranges no longer
	// hold.
	hdr.Del("Content-Length")
	hdr.Del("ETag")
	hdr.Del("Accept-Ranges")
	p := w.page()
	var style string
	if p.CSS != "" {
		style = `<style>`
		if nonce := allowStyle(hdr, w.nonce); nonce != "" {
			style = `<style nonce="` + nonce + `">`
		}
		style += p.CSS + `</style>`
	}
	var out io.Writer = w.ResponseWriter
	if coding != "" {
		w.enc = newEncoder(coding, w.ResponseWriter)
		out = w.enc
	}
	w.rw = newRewriter(out, p.AfterID, snippets{after: []byte(style + p.After), bodyEnd: []byte(style + p.BeforeBodyEnd)})
	if coding != "" {
		w.dec = startDecoder(coding, lockedWriter{&w.mu, w.rw})
	}
	w.active = true
}

// Write rewrites the body of an active response and passes any other
// through.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.active {
		return w.ResponseWriter.Write(p)
	}
	if w.dec != nil {
		return w.dec.pw.Write(p)
	}
	return w.rw.Write(p)
}

// ReadFrom keeps io.Copy from bypassing Write on an active response (the
// wrapper's own ReadFrom would hand the body to the underlying writer).
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.active {
		return w.ResponseWriterWrapper.ReadFrom(src)
	}
	return io.Copy(writerOnly{w}, src)
}

// Flush sends what can be sent. The rewriter keeps its small window back,
// so a marker split across a flush is still found.
func (w *Writer) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.enc != nil {
		_ = w.enc.Flush()
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Close ends an active response after the route: the decoder drains, the
// rewriter writes its window (and the snippet if due), the encoder writes
// its trailer. On a response that was not rewritten it does nothing.
func (w *Writer) Close() error {
	if !w.active {
		return nil
	}
	var err error
	if w.dec != nil {
		_ = w.dec.pw.Close()
		err = <-w.dec.done
		w.dec = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.rw.close(); err == nil {
		err = e
	}
	w.injected = w.rw.state == stDone
	if w.enc != nil {
		if e := w.enc.Close(); err == nil {
			err = e
		}
	}
	w.active = false
	return err
}

// Injected reports, after Close, whether the page got its markup (a page
// without </body> gets none).
func (w *Writer) Injected() bool { return w.injected }

// Abort releases the decoder goroutine when the route ended abnormally;
// after Close it does nothing.
func (w *Writer) Abort() {
	if w.dec != nil {
		_ = w.dec.pw.CloseWithError(io.ErrUnexpectedEOF)
		<-w.dec.done
		w.dec = nil
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
	_ http.ResponseWriter                       = (*Writer)(nil)
	_ http.Flusher                              = (*Writer)(nil)
	_ http.Pusher                               = (*Writer)(nil)
	_ io.ReaderFrom                             = (*Writer)(nil)
	_ interface{ Unwrap() http.ResponseWriter } = (*Writer)(nil)
)
