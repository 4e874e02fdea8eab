package caddymodule

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

var testSnippets = pageSnippets{link: []byte("[LINK]"), inline: []byte("[INLINE]"), fixed: []byte("[FIXED]")}

// rewrite runs page through a rewriter in the given pieces.
func rewrite(t *testing.T, kind injectKind, pieces ...[]byte) (string, *rewriter) {
	t.Helper()
	var out bytes.Buffer
	rw := newRewriter(&out, kind, testSnippets)
	for _, p := range pieces {
		if _, err := rw.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := rw.close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), rw
}

func TestRewriterMarkers(t *testing.T) {
	for _, tt := range []struct {
		name string
		kind injectKind
		in   string
		want string
	}{
		{"login link", injectLoginLink, "<html><body><form></form></body></html>", "<html><body><form></form>[LINK]</body></html>"},
		{"login link upper case", injectLoginLink, "<BODY>x</BODY>", "<BODY>x[LINK]</BODY>"},
		{"login link no body end", injectLoginLink, "<p>fragment</p>", "<p>fragment</p>"},
		{"launcher after span", injectLauncher, `<header><span class="u" id="user-name">bob</span> <a>x</a></header></body>`,
			`<header><span class="u" id="user-name">bob</span>[INLINE] <a>x</a></header></body>`},
		{"launcher single quotes", injectLauncher, `<div id='user-name'><b>bob</b></div></body>`, `<div id='user-name'><b>bob</b></div>[INLINE]</body>`},
		{"launcher void element", injectLauncher, `<img id="user-name" src="a.png"><p>x</p>`, `<img id="user-name" src="a.png">[INLINE]<p>x</p>`},
		{"launcher fixed", injectLauncher, `<html><body><p>no user</p></body></html>`, `<html><body><p>no user</p>[FIXED]</body></html>`},
		{"launcher anchor after body end", injectLauncher, `</body><span id="user-name">x</span>`, `[FIXED]</body><span id="user-name">x</span>`},
		{"launcher only once", injectLauncher, `<span id="user-name">a</span><span id="user-name">b</span></body>`, `<span id="user-name">a</span>[INLINE]<span id="user-name">b</span></body>`},
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
		kind     injectKind
		in, want string
	}{
		{injectLauncher, pad + `<nav><span id="user-name">alice</span></nav>` + pad + "</body></html>",
			pad + `<nav><span id="user-name">alice</span>[INLINE]</nav>` + pad + "</body></html>"},
		{injectLoginLink, pad + "<form></form>" + pad + "</body></html>", pad + "<form></form>" + pad + "[LINK]</body></html>"},
		{injectLauncher, pad + "</body></html>", pad + "[FIXED]</body></html>"},
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
		got, rw := rewrite(t, injectLoginLink, pieces...)
		if len(got) != len(page)+len("[LINK]") || !strings.HasSuffix(got, "[LINK]</body></html>") {
			t.Fatalf("writes of %d: output of %d bytes, tail %q", size, len(got), got[len(got)-40:])
		}
		if rw.maxBuf > scanWindow+scanChunk || cap(rw.buf) > scanWindow+scanChunk {
			t.Fatalf("writes of %d: held up to %d bytes (cap %d), bound %d", size, rw.maxBuf, cap(rw.buf), scanWindow+scanChunk)
		}
		t.Logf("writes of %d bytes: at most %d bytes held for a %d-byte page", size, rw.maxBuf, len(page))
	}
}

func TestCSPAllowStyleNonce(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"style-src 'self'", "style-src 'self' 'nonce-N'"},
		{"default-src 'self'; img-src *", "default-src 'self'; img-src *; style-src-elem 'self' 'nonce-N'"},
		{"default-src 'none'; style-src 'self' https://cdn.example; script-src 'self'",
			"default-src 'none'; style-src 'self' https://cdn.example 'nonce-N'; script-src 'self'"},
		{"style-src 'self'; style-src-elem 'none'", "style-src 'self'; style-src-elem 'nonce-N'"},
		{"default-src 'none'", "default-src 'none'; style-src-elem 'nonce-N'"},
		{"style-src 'unsafe-inline'", "style-src 'unsafe-inline'"},
		{"style-src 'unsafe-inline' 'nonce-abc'", "style-src 'unsafe-inline' 'nonce-abc' 'nonce-N'"},
		{"script-src 'self'; frame-ancestors 'none'", "script-src 'self'; frame-ancestors 'none'"},
		{"style-src 'self', default-src 'none'", "style-src 'self' 'nonce-N', default-src 'none'; style-src-elem 'nonce-N'"},
	} {
		got, changed := cspAllowStyleNonce(tt.in, "N")
		if got != tt.want || changed != (tt.in != tt.want) {
			t.Errorf("%q: got %q (changed %v), want %q", tt.in, got, changed, tt.want)
		}
	}
}

// TestCSPStyleNonceNeverWidensScripts: the nonce of the injected style is
// never where it would also allow a script (default-src), and every
// policy's script sources come out as they went in.
func TestCSPStyleNonceNeverWidensScripts(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"default-src 'none'; script-src 'nonce-abc'", "default-src 'none'; script-src 'nonce-abc'; style-src-elem 'nonce-N'"},
		{"default-src 'none';", "default-src 'none'; style-src-elem 'nonce-N'"},
		{"DEFAULT-SRC 'none'", "DEFAULT-SRC 'none'; style-src-elem 'nonce-N'"},
		{"default-src\t'none'", "default-src\t'none'; style-src-elem 'nonce-N'"},
		{"default-src 'self' https://cdn.example 'strict-dynamic'", "default-src 'self' https://cdn.example 'strict-dynamic'; style-src-elem 'self' https://cdn.example 'strict-dynamic' 'nonce-N'"},
		// Inline styles already allowed: a nonce would switch that off.
		{"default-src 'unsafe-inline'", "default-src 'unsafe-inline'"},
		{"default-src 'self' 'unsafe-inline' 'nonce-abc'", "default-src 'self' 'unsafe-inline' 'nonce-abc'; style-src-elem 'self' 'unsafe-inline' 'nonce-abc' 'nonce-N'"},
		{"default-src 'none'; style-src 'unsafe-inline'", "default-src 'none'; style-src 'unsafe-inline'"},
		// The first of a repeated directive is the one browsers use.
		{"default-src 'self'; default-src 'none'", "default-src 'self'; default-src 'none'; style-src-elem 'self' 'nonce-N'"},
		{"style-src 'self'; style-src 'none'", "style-src 'self' 'nonce-N'; style-src 'none'"},
		// style-src-attr governs attributes only.
		{"style-src-attr 'none'; default-src 'self'", "style-src-attr 'none'; default-src 'self'; style-src-elem 'self' 'nonce-N'"},
		{"default-src 'none'; style-src-elem 'self'", "default-src 'none'; style-src-elem 'self' 'nonce-N'"},
		{"style-src", "style-src 'nonce-N'"},
		// Only ASCII white space separates; this is no default-src.
		{"default-src\u00a0'none'", "default-src\u00a0'none'"},
		{"script-src 'none'", "script-src 'none'"},
		{"default-src 'none', script-src 'self'", "default-src 'none'; style-src-elem 'nonce-N', script-src 'self'"},
	} {
		got, changed := cspAllowStyleNonce(tt.in, "N")
		if got != tt.want || changed != (tt.in != tt.want) {
			t.Errorf("%q: got %q (changed %v), want %q", tt.in, got, changed, tt.want)
		}
		in, out := strings.Split(tt.in, ","), strings.Split(got, ",")
		for i := range in {
			if a, b := scriptSources(in[i]), scriptSources(out[i]); a != b {
				t.Errorf("%q: script sources %q became %q", tt.in, a, b)
			}
		}
	}
}

// scriptSources is the source list that governs script elements in one
// policy.
func scriptSources(policy string) string {
	best, rank := "", 0
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		r := map[string]int{"script-src-elem": 3, "script-src": 2, "default-src": 1}[strings.ToLower(f[0])]
		if r > rank {
			best, rank = strings.Join(f[1:], " "), r
		}
	}
	return best
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
		limitAcceptEncoding(h)
		if got := h.Get("Accept-Encoding"); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}
