package inject

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

const (
	dashPage  = "<html><body><header><span id=\"user-name\">bob</span> <a>x</a></header>\n<main>tickets</main>\n</body></html>\n"
	plainPage = "<html><body><main>no user name here</main></body></html>\n"
)

// The writer is one of Caddy's wrapped writers: what the server's writer
// can do beyond Write (Push, flushing, deadlines, ReadFrom) reaches it
// through the writer, whether the page is rewritten or not. The injector
// that embedded a bare http.ResponseWriter hid Push.
func TestWriterReachesUnderlyingWriter(t *testing.T) {
	for _, ctype := range []string{"text/html", "application/json"} {
		u := newUnderlying()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		w := New(u, r, func() Page { return testPage })
		var rw http.ResponseWriter = w
		if got := rw.(interface{ Unwrap() http.ResponseWriter }).Unwrap(); got != u {
			t.Fatalf("%s: Unwrap gave %T, not the underlying writer", ctype, got)
		}
		p, ok := rw.(http.Pusher)
		if !ok {
			t.Fatalf("%s: the writer hides the underlying writer's http.Pusher", ctype)
		}
		if err := p.Push("/app.css", nil); err != nil || len(u.pushed) != 1 {
			t.Fatalf("%s: Push: %v, underlying got %q", ctype, err, u.pushed)
		}
		rc := http.NewResponseController(rw)
		d := time.Unix(1700000000, 0)
		if err := rc.SetWriteDeadline(d); err != nil || !u.deadline.Equal(d) {
			t.Fatalf("%s: SetWriteDeadline: %v, underlying has %v", ctype, err, u.deadline)
		}
		rw.Header().Set("Content-Type", ctype)
		io.WriteString(rw, "<p>")
		if err := rc.Flush(); err != nil || u.flushes != 1 || !u.Flushed {
			t.Fatalf("%s: ResponseController.Flush: %v, %d flushes reached the underlying writer", ctype, err, u.flushes)
		}
		// Caddy's own wrappers (encode, templates, ...) take it as any
		// other writer.
		rec := caddyhttp.NewResponseRecorder(rw, nil, nil)
		io.WriteString(rec, "</body>")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		want := "<p><style>#x{color:red}</style>[END]</body>"
		if ctype != "text/html" {
			want = "<p></body>"
		}
		if got := u.Body.String(); got != want {
			t.Fatalf("%s: body %q, want %q", ctype, got, want)
		}
	}
}

// A 200 page in every coding the writer handles gets its markup, stays in
// its coding, and loses the headers that described the old body.
func TestWriterInjectsPages(t *testing.T) {
	for _, coding := range []string{"", "identity", "gzip", "x-gzip", "zstd", "br"} {
		for _, tt := range []struct{ page, want string }{
			{dashPage, strings.Replace(dashPage, "bob</span>", "bob</span><style>#x{color:red}</style>[AFTER]", 1)},
			{plainPage, strings.Replace(plainPage, "</body>", "<style>#x{color:red}</style>[END]</body>", 1)},
		} {
			u, w, err := serve(t, testPage, htmlPage(t, coding, tt.page))
			if err != nil {
				t.Fatalf("%q: Close: %v", coding, err)
			}
			if u.Code != 200 || u.Header().Get("Content-Encoding") != coding {
				t.Fatalf("%q: %d, Content-Encoding %q", coding, u.Code, u.Header().Get("Content-Encoding"))
			}
			for _, h := range []string{"Content-Length", "ETag", "Accept-Ranges"} {
				if v := u.Header().Get(h); v != "" {
					t.Errorf("%q: %s %q kept for a changed body", coding, h, v)
				}
			}
			if got := string(decompress(t, coding, u.Body.Bytes())); got != tt.want {
				t.Fatalf("%q: got\n%s\nwant\n%s", coding, got, tt.want)
			}
			if !w.Injected() {
				t.Fatalf("%q: Injected is false for a page that got its markup", coding)
			}
		}
	}
}

// Every response that is not a 200 HTML page in a known coding passes
// through byte for byte with its headers, and the page is never built.
func TestWriterLeavesOtherResponsesUntouched(t *testing.T) {
	gz := string(compress(t, "gzip", []byte(plainPage)))
	for _, tt := range []struct {
		name   string
		status int
		hdr    []string
		body   string
	}{
		{"404 page", 404, []string{"Content-Type", "text/html"}, plainPage},
		{"json", 200, []string{"Content-Type", "application/json"}, `{"a":"</body>"}`},
		{"no type", 200, nil, plainPage},
		{"html-like type", 200, []string{"Content-Type", "text/htmlx"}, plainPage},
		{"bad media type", 200, []string{"Content-Type", "text/html; charset"}, plainPage},
		{"range", 200, []string{"Content-Type", "text/html", "Content-Range", "bytes 0-9/99"}, plainPage},
		{"deflate", 200, []string{"Content-Type", "text/html", "Content-Encoding", "deflate"}, "\x1b\x00not-really-deflate</body>"},
		{"two codings", 200, []string{"Content-Type", "text/html", "Content-Encoding", "gzip", "Content-Encoding", "gzip"}, gz},
		{"switching protocols", 101, []string{"Content-Type", "text/html"}, ""},
		{"304", 304, []string{"Content-Type", "text/html", "ETag", `"v1"`}, ""},
	} {
		built := false
		u := newUnderlying()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		w := New(u, r, func() Page { built = true; return testPage })
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			w.Header().Add(tt.hdr[i], tt.hdr[i+1])
		}
		w.Header().Set("Content-Length", "7")
		w.WriteHeader(tt.status)
		io.WriteString(w, tt.body)
		if err := w.Close(); err != nil {
			t.Fatalf("%s: Close: %v", tt.name, err)
		}
		if built || w.Injected() {
			t.Errorf("%s: the page was built", tt.name)
		}
		if u.Code != tt.status || u.Body.String() != tt.body || u.Header().Get("Content-Length") != "7" {
			t.Errorf("%s: %d %q, Content-Length %q", tt.name, u.Code, u.Body.String(), u.Header().Get("Content-Length"))
		}
		want := http.Header{}
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			want.Add(tt.hdr[i], tt.hdr[i+1])
		}
		for name, vals := range want {
			if got := u.Header().Values(name); strings.Join(got, "\n") != strings.Join(vals, "\n") {
				t.Errorf("%s: %s %q, upstream sent %q", tt.name, name, got, vals)
			}
		}
	}
}

// 1xx answers before the final one go straight through; the final 200
// page is still rewritten, and a second WriteHeader is ignored.
func TestWriterInformationalThenPage(t *testing.T) {
	u, _, err := serve(t, testPage, func(w http.ResponseWriter) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, plainPage)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.early) != 1 || u.early[0] != http.StatusEarlyHints || u.Code != http.StatusOK || !strings.Contains(u.Body.String(), "[END]</body>") {
		t.Fatalf("early %v, %d %q", u.early, u.Code, u.Body.String())
	}
}

// A body written without WriteHeader is a 200, rewritten like any other.
func TestWriterImplicitHeader(t *testing.T) {
	for name, handler := range map[string]func(w http.ResponseWriter){
		"Write": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, plainPage)
		},
		"ReadFrom": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.(io.ReaderFrom).ReadFrom(onlyReader{strings.NewReader(plainPage)})
		},
		"Flush": func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.(http.Flusher).Flush()
			io.WriteString(w, plainPage)
		},
	} {
		u, w, err := serve(t, testPage, handler)
		if err != nil || u.Code != 200 || !w.Injected() || !strings.Contains(u.Body.String(), "[END]</body>") {
			t.Fatalf("%s: %v, %d %q", name, err, u.Code, u.Body.String())
		}
	}
}

// io.Copy into the writer (which uses ReadFrom) cannot bypass the
// rewriting; a response that is not rewritten goes to the underlying
// writer's ReadFrom, as Caddy's wrapper would.
func TestWriterReadFrom(t *testing.T) {
	for _, coding := range []string{"", "gzip"} {
		u, _, err := serve(t, testPage, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			if coding != "" {
				w.Header().Set("Content-Encoding", coding)
			}
			io.Copy(w, onlyReader{bytes.NewReader(compress(t, coding, []byte(plainPage)))})
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(decompress(t, coding, u.Body.Bytes())); !strings.Contains(got, "[END]</body>") || u.readFroms != 0 {
			t.Fatalf("%q: %q, %d ReadFroms on the underlying writer", coding, got, u.readFroms)
		}
	}
	u, _, _ := serve(t, testPage, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "image/png")
		io.Copy(w, onlyReader{strings.NewReader("\x89PNG</body>")})
	})
	if u.Body.String() != "\x89PNG</body>" || u.readFroms != 1 {
		t.Fatalf("image: %q, %d ReadFroms on the underlying writer", u.Body.String(), u.readFroms)
	}
}

// A page flushed halfway has its first half on the wire, decodable in
// its coding, before the rest is written. A compressed half reaches the
// writer's encoder through the decoder goroutine, so it may take another
// Flush or two.
func TestWriterFlushStreams(t *testing.T) {
	first := "<html><body>" + strings.Repeat("<p>first half of the page</p>\n", 100)
	for _, coding := range []string{"", "gzip", "zstd", "br"} {
		var sent string
		u, _, err := serve(t, testPage, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			if coding != "" {
				w.Header().Set("Content-Encoding", coding)
			}
			var buf bytes.Buffer
			zw := testEncoder(t, coding, &buf)
			zw.Write([]byte(first))
			zw.Flush()
			w.Write(buf.Bytes())
			u := w.(interface{ Unwrap() http.ResponseWriter }).Unwrap().(*underlying)
			for deadline := time.Now().Add(10 * time.Second); len(sent) < len(first)-scanWindow && time.Now().Before(deadline); {
				w.(http.Flusher).Flush()
				sent = partial(t, coding, u.body())
				time.Sleep(time.Millisecond)
			}
			buf.Reset()
			zw.Write([]byte("</body></html>"))
			zw.Close()
			w.Write(buf.Bytes())
		})
		if err != nil {
			t.Fatalf("%q: %v", coding, err)
		}
		if len(sent) < len(first)-scanWindow || !strings.HasPrefix(first, sent) {
			t.Fatalf("%q: after Flush %d of the first %d bytes were sent", coding, len(sent), len(first))
		}
		if got := string(decompress(t, coding, u.Body.Bytes())); got != first+"<style>#x{color:red}</style>[END]</body></html>" {
			t.Fatalf("%q: got %q", coding, got[len(first)-10:])
		}
	}
}

// testEncoder is an upstream's streaming encoder for coding.
func testEncoder(t *testing.T, coding string, w io.Writer) encoder {
	if coding == "" {
		return nopEncoder{w}
	}
	return newEncoder(coding, w)
}

type nopEncoder struct{ io.Writer }

func (nopEncoder) Flush() error { return nil }
func (nopEncoder) Close() error { return nil }

// partial decodes as much of a flushed, unfinished stream as there is.
func partial(t *testing.T, coding string, b []byte) string {
	if coding == "" {
		return string(b)
	}
	var out bytes.Buffer
	err := decode(coding, bytes.NewReader(b), &out)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "EOF") {
		t.Fatalf("%q: the flushed part does not decode: %v", coding, err)
	}
	return out.String()
}

// A page that claims a coding but is not in it is cut: Close reports the
// decoder's error, and the markup is not counted as injected.
func TestWriterCorruptBody(t *testing.T) {
	for _, coding := range []string{"gzip", "zstd", "br"} {
		_, w, err := serve(t, testPage, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Encoding", coding)
			for range 3 {
				if _, err := io.WriteString(w, "not compressed at all </body>"); err != nil {
					return
				}
			}
		})
		if err == nil || w.Injected() {
			t.Fatalf("%s: Close: %v, injected %v", coding, err, w.Injected())
		}
	}
	// An empty gzip body is a page of nothing, not an error.
	u, w, err := serve(t, testPage, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(200)
	})
	if err != nil || w.Injected() || len(decompress(t, "gzip", u.Body.Bytes())) != 0 {
		t.Fatalf("empty gzip page: %v, injected %v", err, w.Injected())
	}
}

// A route that ends abnormally (a panic in a later handler) leaves no
// decoder goroutine behind: Abort ends it, and may be called again.
func TestWriterAbort(t *testing.T) {
	u := newUnderlying()
	w := New(u, httptest.NewRequest(http.MethodGet, "/", nil), func() Page { return testPage })
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Encoding", "gzip")
	gz := compress(t, "gzip", []byte(plainPage))
	w.Write(gz[:len(gz)/2])
	done := make(chan struct{})
	go func() { w.Abort(); w.Abort(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Abort did not end the decoder")
	}
	if w.dec != nil {
		t.Fatal("the decoder is still set after Abort")
	}
}

// A page without </body> (a fragment) goes out whole, without markup.
func TestWriterFragment(t *testing.T) {
	u, w, err := serve(t, testPage, htmlPage(t, "", "<p>fragment</p>"))
	if err != nil || w.Injected() || u.Body.String() != "<p>fragment</p>" {
		t.Fatalf("%v, injected %v, %q", err, w.Injected(), u.Body.String())
	}
}

// Under a policy that restricts styles the style element carries the
// fresh nonce the rewritten policy names; under one that does not, and
// without any, it carries none; a page without CSS leaves the policy as
// it was.
func TestWriterCSP(t *testing.T) {
	for _, tt := range []struct {
		name       string
		page       Page
		csp, cspro []string
		wantCSP    []string
		wantCSPRO  []string
		style      string
	}{
		{"no policy", testPage, nil, nil, nil, nil, "<style>"},
		{"style-src", testPage, []string{"style-src 'self'"}, nil, []string{"style-src 'self' 'nonce-N'"}, nil, `<style nonce="N">`},
		{"default-src", testPage, []string{"default-src 'none'"}, nil, []string{"default-src 'none'; style-src-elem 'nonce-N'"}, nil, `<style nonce="N">`},
		{"report-only", testPage, nil, []string{"default-src 'none'; report-uri /r"}, nil, []string{"default-src 'none'; report-uri /r; style-src-elem 'nonce-N'"}, `<style nonce="N">`},
		{"both", testPage, []string{"script-src 'self'"}, []string{"style-src 'self'"}, []string{"script-src 'self'"}, []string{"style-src 'self' 'nonce-N'"}, `<style nonce="N">`},
		{"styles not restricted", testPage, []string{"script-src 'self'", "img-src 'none'"}, nil, []string{"script-src 'self'", "img-src 'none'"}, nil, "<style>"},
		{"inline styles allowed", testPage, []string{"style-src 'unsafe-inline'"}, nil, []string{"style-src 'unsafe-inline'"}, nil, "<style>"},
		{"no CSS", Page{BeforeBodyEnd: "[END]"}, []string{"default-src 'none'"}, nil, []string{"default-src 'none'"}, nil, ""},
	} {
		var extra []string
		for _, v := range tt.csp {
			extra = append(extra, "Content-Security-Policy", v)
		}
		for _, v := range tt.cspro {
			extra = append(extra, "Content-Security-Policy-Report-Only", v)
		}
		u, _, err := serve(t, tt.page, htmlPage(t, "", plainPage, extra...))
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Header().Values("Content-Security-Policy"); strings.Join(got, "\n") != strings.Join(tt.wantCSP, "\n") {
			t.Errorf("%s: CSP %q, want %q", tt.name, got, tt.wantCSP)
		}
		if got := u.Header().Values("Content-Security-Policy-Report-Only"); strings.Join(got, "\n") != strings.Join(tt.wantCSPRO, "\n") {
			t.Errorf("%s: CSP-Report-Only %q, want %q", tt.name, got, tt.wantCSPRO)
		}
		want := strings.Replace(plainPage, "</body>", "[END]</body>", 1)
		if tt.style != "" {
			want = strings.Replace(plainPage, "</body>", tt.style+"#x{color:red}</style>[END]</body>", 1)
		}
		if u.Body.String() != want {
			t.Errorf("%s: body %q", tt.name, u.Body.String())
		}
	}
}

// Two responses get two nonces, each of 128 random bits.
func TestWriterNonceFresh(t *testing.T) {
	a, b := newNonce(), newNonce()
	if a == b || len(a) != 22 || strings.ContainsAny(a+b, "+/=") {
		t.Fatalf("nonces %q, %q", a, b)
	}
}

func TestPageRequest(t *testing.T) {
	for _, tt := range []struct {
		method string
		hdr    []string
		want   bool
	}{
		{"GET", nil, true},
		{"GET", []string{"Accept", "text/html,application/xhtml+xml"}, true},
		{"HEAD", nil, false},
		{"POST", nil, false},
		{"GET", []string{"Upgrade", "websocket"}, false},
		{"GET", []string{"Accept", "text/event-stream"}, false},
	} {
		r := httptest.NewRequest(tt.method, "/", nil)
		for i := 0; i+1 < len(tt.hdr); i += 2 {
			r.Header.Set(tt.hdr[i], tt.hdr[i+1])
		}
		if got := PageRequest(r); got != tt.want {
			t.Errorf("%s %v: %v, want %v", tt.method, tt.hdr, got, tt.want)
		}
	}
}

// New leaves the request asking only for codings it can rewrite.
func TestNewLimitsAcceptEncoding(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept-Encoding", "br, deflate, gzip, zstd")
	New(newUnderlying(), r, func() Page { return testPage })
	if got := r.Header.Get("Accept-Encoding"); got != "br, gzip, zstd" {
		t.Fatalf("Accept-Encoding %q", got)
	}
}

func TestLimitAcceptEncoding(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"gzip, deflate, br, zstd", "gzip, br, zstd"},
		{"br", "br"},
		{"deflate", ""},
		{"gzip;q=1.0, *;q=0.5", "gzip;q=1.0"},
		{"zstd", "zstd"},
		{"", ""},
	} {
		h := http.Header{}
		if tt.in != "" {
			h.Set("Accept-Encoding", tt.in)
		}
		LimitAcceptEncoding(h)
		if got := h.Get("Accept-Encoding"); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}
