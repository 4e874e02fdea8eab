package caddymodule

import (
	"bytes"
	"io"
	"net/http"
	"strings"
)

// The rewriter streams a page through a small window: it holds back at most
// scanWindow bytes between writes (so a marker split across two writes is
// still found, and the tag around the user-name anchor can be read), and
// scans at most scanChunk new bytes at a time. Its memory is bounded by
// their sum, whatever the page's size.
const (
	scanWindow = 256
	scanChunk  = 32 << 10
)

// States of the rewriter.
const (
	stBodyEnd  = iota // login link: looking for </body>
	stAnchor          // launcher: looking for id="user-name" (or </body>)
	stCloseTag        // launcher: looking for the anchor element's end tag
	stTagEnd          // launcher: looking for the end of the anchor's tag
	stDone            // injected; the rest passes through
)

// pageSnippets are the HTML pieces one response may get.
type pageSnippets struct {
	link   []byte // login link, before </body>
	inline []byte // launcher after the user-name element
	fixed  []byte // launcher fixed top right, before </body>
}

// rewriter injects a snippet into a stream of HTML.
type rewriter struct {
	out      io.Writer
	buf      []byte
	state    int
	closeTag []byte
	sn       pageSnippets
	err      error
	maxBuf   int // the most bytes ever held; tests check the bound
}

func newRewriter(out io.Writer, kind injectKind, sn pageSnippets) *rewriter {
	rw := &rewriter{out: out, buf: make([]byte, 0, scanWindow+scanChunk), sn: sn, state: stBodyEnd}
	if kind == injectLauncher {
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

var (
	markBodyEnd = []byte("</body")
	markAnchor1 = []byte(`id="user-name"`)
	markAnchor2 = []byte(`id='user-name'`)
)

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
				rw.emit(rw.sn.link)
				rw.state = stDone
				continue
			}
		case stAnchor:
			a, alen := indexFold(rw.buf, markAnchor1), len(markAnchor1)
			if a2 := indexFold(rw.buf, markAnchor2); a2 >= 0 && (a < 0 || a2 < a) {
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
				rw.emit(rw.sn.fixed)
				rw.state = stDone
				continue
			}
		case stCloseTag:
			if i := indexFold(rw.buf, rw.closeTag); i >= 0 {
				rw.consume(i + len(rw.closeTag))
				rw.emit(rw.sn.inline)
				rw.state = stDone
				continue
			}
		case stTagEnd:
			if i := bytes.IndexByte(rw.buf, '>'); i >= 0 {
				rw.consume(i + 1)
				rw.emit(rw.sn.inline)
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

// voidElements have no end tag: the launcher goes right after their tag.
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

// loginLinkHTML is the "Log in with KaseyaOne" link added to BMS's login
// page. It is a function of the request so that it can be rendered
// differently per tenant (the integration switch renders it disabled).
func (h *Handler) loginLinkHTML(r *http.Request) string {
	if !h.loginLinkEnabled(r) {
		return disabledLoginLinkHTML
	}
	return `<a id="k1sso-login-link" href="/.k1sso/login">Log in with KaseyaOne</a>`
}

// injectCSS styles the injected elements. It lives in one <style> element
// (with a nonce under a CSP) because style attributes cannot be allowed by
// a nonce.
const injectCSS = `#k1sso-login-link{display:block;width:max-content;margin:16px auto;padding:10px 18px;` +
	`border-radius:6px;background:#0b5cab;color:#fff;font:600 14px/1.2 system-ui,sans-serif;text-decoration:none}` +
	`#k1sso-login-link:hover{background:#094a8a}` +
	`#k1sso-login-link[aria-disabled=true]{background:#9aa5b1;cursor:not-allowed;pointer-events:none}` +
	`#k1sso-launcher{display:inline-flex;align-items:center;justify-content:center;width:26px;height:26px;` +
	`margin-left:8px;vertical-align:middle;color:inherit;border-radius:4px}` +
	`#k1sso-launcher:hover{background:rgba(127,127,127,.2)}#k1sso-launcher svg{width:18px;height:18px}` +
	`#k1sso-launcher.k1sso-fixed{position:fixed;top:8px;right:8px;z-index:2147483647;background:#fff;` +
	`color:#0b5cab;box-shadow:0 1px 4px rgba(0,0,0,.3)}`

// launcherIcon is a 3×3 grid of squares, the usual app-launcher icon.
// Inline SVG needs no img-src.
const launcherIcon = `<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false" fill="currentColor">` +
	`<rect x="3" y="3" width="5" height="5" rx="1"/><rect x="10" y="3" width="5" height="5" rx="1"/><rect x="17" y="3" width="5" height="5" rx="1"/>` +
	`<rect x="3" y="10" width="5" height="5" rx="1"/><rect x="10" y="10" width="5" height="5" rx="1"/><rect x="17" y="10" width="5" height="5" rx="1"/>` +
	`<rect x="3" y="17" width="5" height="5" rx="1"/><rect x="10" y="17" width="5" height="5" rx="1"/><rect x="17" y="17" width="5" height="5" rx="1"/></svg>`

// snippets builds the pieces for one response; nonce is "" when no CSP
// needs one.
func (i *injector) snippets(nonce string) pageSnippets {
	style := `<style>`
	if nonce != "" {
		style = `<style nonce="` + nonce + `">`
	}
	if i.notice != "" {
		style += noticeCSS
	}
	style += injectCSS + `</style>`
	switch i.kind {
	case injectLoginLink:
		return pageSnippets{link: []byte(style + i.h.loginLinkHTML(i.r))}
	case injectNotice:
		return pageSnippets{link: []byte(style + i.notice)}
	}
	style += i.notice // with the launcher, wherever it goes
	a := `<a id="k1sso-launcher" href="` + prefix + `launcher" title="KaseyaOne apps" aria-label="KaseyaOne apps"`
	return pageSnippets{
		inline: []byte(style + a + `>` + launcherIcon + `</a>`),
		fixed:  []byte(style + a + ` class="k1sso-fixed">` + launcherIcon + `</a>`),
	}
}

// cspAllowStyleNonce lets the injected <style nonce=...> element through
// every policy of a Content-Security-Policy (or -Report-Only) header value
// and widens nothing else. In each policy the directive that governs style
// elements is the first style-src-elem, else style-src, else default-src:
//
//   - style-src-elem or style-src gets 'nonce-<nonce>' added. Both are about
//     styles only, and a nonce never allows a style attribute.
//   - default-src is left as it is, since a nonce there would also allow
//     <script nonce=...>. The policy gets a style-src-elem with
//     default-src's sources plus the nonce instead, which changes nothing
//     for the page's own styles.
//
// 'none' is dropped from the list the nonce joins. A list that allows inline
// styles already ('unsafe-inline' without any nonce or hash, which a nonce
// would switch off) is left alone, as is a policy without any of the three
// directives (styles are not restricted). Each policy is enforced on its
// own, so every one that restricts styles gets the nonce.
func cspAllowStyleNonce(header, nonce string) (string, bool) {
	policies := strings.Split(header, ",")
	changed := false
	for pi, pol := range policies {
		dirs := strings.Split(pol, ";")
		gov, govName := -1, ""
		seen := map[string]bool{}
		for di, d := range dirs {
			f := cspFields(d)
			if len(f) == 0 {
				continue
			}
			name := strings.ToLower(f[0])
			if seen[name] {
				continue // browsers use the first of a repeated directive
			}
			seen[name] = true
			if cspStyleRank[name] > cspStyleRank[govName] {
				gov, govName = di, name
			}
		}
		if gov < 0 {
			continue
		}
		fields := cspFields(dirs[gov])
		inline, keyed := false, false
		srcs := []string{"style-src-elem"}
		for _, s := range fields[1:] {
			ls := strings.ToLower(s)
			switch {
			case ls == "'unsafe-inline'":
				inline = true
			case strings.HasPrefix(ls, "'nonce-") || strings.HasPrefix(ls, "'sha256-") ||
				strings.HasPrefix(ls, "'sha384-") || strings.HasPrefix(ls, "'sha512-"):
				keyed = true
			}
			if ls != "'none'" {
				srcs = append(srcs, s)
			}
		}
		if inline && !keyed {
			continue
		}
		srcs = append(srcs, "'nonce-"+nonce+"'")
		if govName == "default-src" {
			policies[pi] = strings.TrimRight(pol, cspSpace+";") + "; " + strings.Join(srcs, " ")
		} else {
			lead := dirs[gov][:len(dirs[gov])-len(strings.TrimLeft(dirs[gov], cspSpace))]
			srcs[0] = fields[0]
			dirs[gov] = lead + strings.Join(srcs, " ")
			policies[pi] = strings.Join(dirs, ";")
		}
		changed = true
	}
	return strings.Join(policies, ","), changed
}

// cspStyleRank orders the directives that can govern style elements.
var cspStyleRank = map[string]int{"style-src-elem": 3, "style-src": 2, "default-src": 1}

// cspSpace is the white space of CSP's grammar: ASCII only, so a directive
// written with another space (U+00A0) is what browsers see, an unknown one.
const cspSpace = " \t\n\f\r"

// cspFields splits a directive into its name and sources at CSP's white
// space.
func cspFields(d string) []string {
	return strings.FieldsFunc(d, func(c rune) bool { return strings.ContainsRune(cspSpace, c) })
}
