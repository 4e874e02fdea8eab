package inject

import (
	"errors"
	"strings"
	"testing"
)

func TestRewriterMarkers(t *testing.T) {
	for _, tt := range []struct {
		name string
		kind testKind
		in   string
		want string
	}{
		{"login link", loginLink, "<html><body><form></form></body></html>", "<html><body><form></form>[LINK]</body></html>"},
		{"login link upper case", loginLink, "<BODY>x</BODY>", "<BODY>x[LINK]</BODY>"},
		{"login link no body end", loginLink, "<p>fragment</p>", "<p>fragment</p>"},
		{"launcher after span", launcher, `<header><span class="u" id="user-name">bob</span> <a>x</a></header></body>`,
			`<header><span class="u" id="user-name">bob</span>[INLINE] <a>x</a></header></body>`},
		{"launcher single quotes", launcher, `<div id='user-name'><b>bob</b></div></body>`, `<div id='user-name'><b>bob</b></div>[INLINE]</body>`},
		{"launcher void element", launcher, `<img id="user-name" src="a.png"><p>x</p>`, `<img id="user-name" src="a.png">[INLINE]<p>x</p>`},
		{"launcher fixed", launcher, `<html><body><p>no user</p></body></html>`, `<html><body><p>no user</p>[FIXED]</body></html>`},
		{"launcher anchor after body end", launcher, `</body><span id="user-name">x</span>`, `[FIXED]</body><span id="user-name">x</span>`},
		{"launcher only once", launcher, `<span id="user-name">a</span><span id="user-name">b</span></body>`, `<span id="user-name">a</span>[INLINE]<span id="user-name">b</span></body>`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := rewrite(t, tt.kind, []byte(tt.in)); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// Every split point of a page, and one byte per write, give the same output.
func TestRewriterMarkerSplitAcrossWrites(t *testing.T) {
	pad := strings.Repeat("<p>filler text</p>\n", 40) // longer than the window
	for _, tt := range []struct {
		kind     testKind
		in, want string
	}{
		{launcher, pad + `<nav><span id="user-name">alice</span></nav>` + pad + "</body></html>",
			pad + `<nav><span id="user-name">alice</span>[INLINE]</nav>` + pad + "</body></html>"},
		{loginLink, pad + "<form></form>" + pad + "</body></html>", pad + "<form></form>" + pad + "[LINK]</body></html>"},
		{launcher, pad + "</body></html>", pad + "[FIXED]</body></html>"},
	} {
		in := []byte(tt.in)
		for k := 0; k <= len(in); k++ {
			if got, _ := rewrite(t, tt.kind, in[:k], in[k:]); got != tt.want {
				t.Fatalf("split at %d: got\n%s", k, got)
			}
		}
		var bytesOneByOne [][]byte
		for k := range in {
			bytesOneByOne = append(bytesOneByOne, in[k:k+1])
		}
		if got, _ := rewrite(t, tt.kind, bytesOneByOne...); got != tt.want {
			t.Fatalf("one byte per write: got\n%s", got)
		}
	}
}

// A 10 MB page in one write and in small writes never makes the rewriter
// hold more than its window plus one scan chunk.
func TestRewriterBoundedBuffer(t *testing.T) {
	page := []byte("<html><body>" + strings.Repeat("<p>0123456789 abcdefghij</p>\n", 10<<20/29) + "</body></html>")
	for _, size := range []int{len(page), 64 << 10, 1000} {
		var pieces [][]byte
		for p := page; len(p) > 0; {
			n := min(size, len(p))
			pieces = append(pieces, p[:n])
			p = p[n:]
		}
		got, rw := rewrite(t, loginLink, pieces...)
		if len(got) != len(page)+len("[LINK]") || !strings.HasSuffix(got, "[LINK]</body></html>") {
			t.Fatalf("writes of %d: output of %d bytes, tail %q", size, len(got), got[len(got)-40:])
		}
		if rw.maxBuf > scanWindow+scanChunk || cap(rw.buf) > scanWindow+scanChunk {
			t.Fatalf("writes of %d: held up to %d bytes (cap %d), bound %d", size, rw.maxBuf, cap(rw.buf), scanWindow+scanChunk)
		}
		t.Logf("writes of %d bytes: at most %d bytes held for a %d-byte page", size, rw.maxBuf, len(page))
	}
}

// An id longer than the window holds back is never looked for: the markup
// goes before </body>, as on a page without the element.
func TestRewriterIDTooLong(t *testing.T) {
	id := strings.Repeat("x", MaxIDLength+1)
	kind := testKind{id, launcher.sn}
	page := `<span id="` + id + `">bob</span></body>`
	if got, _ := rewrite(t, kind, []byte(page)); got != `<span id="`+id+`">bob</span>[FIXED]</body>` {
		t.Fatalf("got %s", got)
	}
	id = strings.Repeat("y", MaxIDLength)
	kind = testKind{id, launcher.sn}
	page = `<span id="` + id + `">bob</span></body>`
	if got, _ := rewrite(t, kind, []byte(page)); got != `<span id="`+id+`">bob</span>[INLINE]</body>` {
		t.Fatalf("an id of MaxIDLength: got %s", got)
	}
}

// failingWriter fails every write after the first ok ones.
type failingWriter struct{ ok int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.ok == 0 {
		return 0, errBroken
	}
	f.ok--
	return len(p), nil
}

var errBroken = errors.New("connection broken")

// A write error of the connection stops the rewriter: it reports the
// error from then on and writes nothing more.
func TestRewriterWriteError(t *testing.T) {
	for ok := range 3 {
		fw := &failingWriter{ok: ok}
		rw := newRewriter(fw, "", loginLink.sn)
		page := []byte(strings.Repeat("<p>filler text</p>\n", 40) + "</body>" + strings.Repeat("x", scanChunk+10))
		var err error
		for range 3 {
			if _, err = rw.Write(page); err != nil {
				break
			}
		}
		if cerr := rw.close(); err == nil {
			err = cerr
		}
		if !errors.Is(err, errBroken) {
			t.Fatalf("after %d good writes: error %v, want %v", ok, err, errBroken)
		}
	}
}
