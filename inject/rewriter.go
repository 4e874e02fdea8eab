package inject

import (
	"bytes"
	"io"
	"strings"
)

// The rewriter streams a page through a small window: it holds back at most
// scanWindow bytes between writes (so a marker split across two writes is
// still found, and the tag around the anchor's id can be read), and scans
// at most scanChunk new bytes at a time. Its memory is bounded by their
// sum, whatever the page's size.
const (
	scanWindow = 256
	scanChunk  = 32 << 10
)

// MaxIDLength bounds Page.AfterID: the id attribute must fit the window
// the rewriter holds back, with the start of its tag.
const MaxIDLength = 64

// States of the rewriter.
const (
	stBodyEnd  = iota // looking for </body>
	stAnchor          // looking for the anchor's id attribute (or </body>)
	stCloseTag        // looking for the anchor element's end tag
	stTagEnd          // looking for the end of the anchor's tag
	stDone            // injected; the rest passes through
)

// snippets are the two places one page's markup may go, ready to write.
type snippets struct {
	after   []byte // right after the anchor element
	bodyEnd []byte // before </body>, when there is no anchor
}

// rewriter injects a snippet into a stream of HTML.
type rewriter struct {
	out      io.Writer
	buf      []byte
	state    int
	anchor   [2][]byte // id="…" and id='…'
	closeTag []byte
	sn       snippets
	err      error
	maxBuf   int // the most bytes ever held; tests check the bound
}

// newRewriter writes to out the page with sn inserted after the element
// whose id is afterID ("": none), else before </body>.
func newRewriter(out io.Writer, afterID string, sn snippets) *rewriter {
	rw := &rewriter{out: out, buf: make([]byte, 0, scanWindow+scanChunk), sn: sn, state: stBodyEnd}
	if afterID != "" && len(afterID) <= MaxIDLength {
		rw.anchor = [2][]byte{[]byte(`id="` + afterID + `"`), []byte(`id='` + afterID + `'`)}
		rw.state = stAnchor
	}
	return rw
}

// Write takes the next piece of the page.
func (rw *rewriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && rw.err == nil {
		if rw.state == stDone && len(rw.buf) == 0 {
			_, rw.err = rw.out.Write(p)
			break
		}
		k := min(len(p), scanChunk)
		rw.buf = append(rw.buf, p[:k]...)
		rw.maxBuf = max(rw.maxBuf, len(rw.buf))
		p = p[k:]
		rw.process(false)
	}
	if rw.err != nil {
		return 0, rw.err
	}
	return n, nil
}

// close writes what is held back.
func (rw *rewriter) close() error {
	if rw.err == nil {
		rw.process(true)
	}
	return rw.err
}

func (rw *rewriter) emit(b []byte) {
	if rw.err == nil && len(b) > 0 {
		_, rw.err = rw.out.Write(b)
	}
}

// consume emits buf[:n] and drops it from the buffer.
func (rw *rewriter) consume(n int) {
	rw.emit(rw.buf[:n])
	rw.buf = rw.buf[:copy(rw.buf, rw.buf[n:])]
}

var markBodyEnd = []byte("</body")

// process injects where a marker is found in the buffer and emits all but
// the window; at the end (final) it emits everything.
func (rw *rewriter) process(final bool) {
	for rw.err == nil {
		switch rw.state {
		case stDone:
			rw.consume(len(rw.buf))
			return
		case stBodyEnd:
			if i := indexFold(rw.buf, markBodyEnd); i >= 0 {
				rw.consume(i)
				rw.emit(rw.sn.bodyEnd)
				rw.state = stDone
				continue
			}
		case stAnchor:
			a, alen := indexFold(rw.buf, rw.anchor[0]), len(rw.anchor[0])
			if a2 := indexFold(rw.buf, rw.anchor[1]); a2 >= 0 && (a < 0 || a2 < a) {
				a = a2
			}
			b := indexFold(rw.buf, markBodyEnd)
			if a >= 0 && (b < 0 || a < b) {
				rw.state = stTagEnd
				if name := tagNameBefore(rw.buf[:a]); name != "" && !voidElements[name] {
					rw.closeTag = []byte("</" + name + ">")
					rw.state = stCloseTag
				}
				rw.consume(a + alen)
				continue
			}
			if b >= 0 {
				rw.consume(b)
				rw.emit(rw.sn.bodyEnd)
				rw.state = stDone
				continue
			}
		case stCloseTag:
			if i := indexFold(rw.buf, rw.closeTag); i >= 0 {
				rw.consume(i + len(rw.closeTag))
				rw.emit(rw.sn.after)
				rw.state = stDone
				continue
			}
		case stTagEnd:
			if i := bytes.IndexByte(rw.buf, '>'); i >= 0 {
				rw.consume(i + 1)
				rw.emit(rw.sn.after)
				rw.state = stDone
				continue
			}
		}
		// No marker in the buffer: keep the window for the next write.
		if final {
			rw.consume(len(rw.buf))
		} else if len(rw.buf) > scanWindow {
			rw.consume(len(rw.buf) - scanWindow)
		}
		return
	}
}

// tagNameBefore returns the lower-case name of the tag an attribute at the
// end of b belongs to, or "" when b does not end inside a start tag.
func tagNameBefore(b []byte) string {
	lt := bytes.LastIndexByte(b, '<')
	if lt < 0 || bytes.IndexByte(b[lt:], '>') >= 0 {
		return ""
	}
	j := lt + 1
	for j < len(b) && isTagNameByte(b[j]) {
		j++
	}
	if j == lt+1 || j == len(b) || !isSpace(b[j]) {
		return ""
	}
	return strings.ToLower(string(b[lt+1 : j]))
}

func isTagNameByte(c byte) bool {
	return c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }

// voidElements have no end tag: the snippet goes right after their tag.
var voidElements = map[string]bool{"img": true, "input": true, "br": true, "hr": true, "meta": true, "link": true, "wbr": true, "source": true, "embed": true}

// indexFold is bytes.Index with ASCII case folding, without allocating.
func indexFold(s, pat []byte) int {
	if len(pat) == 0 {
		return 0
	}
	f := lower(pat[0])
	for i := 0; i+len(pat) <= len(s); i++ {
		if lower(s[i]) != f {
			continue
		}
		j := 1
		for j < len(pat) && lower(s[i+j]) == lower(pat[j]) {
			j++
		}
		if j == len(pat) {
			return i
		}
	}
	return -1
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
