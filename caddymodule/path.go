package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
)

// canonicalPath reports whether a request path is in the one form that
// every server reads the same way, so that what k1sso decides on (public,
// login_path, logout_path) is exactly what reverse_proxy forwards
// (u.EscapedPath()). Refused: dot segments and segments ending in `.` or
// a space (Windows drops those), empty segments (`//`), `\`, `;`
// parameters, control characters, invalid UTF-8 (overlong encodings of `.`
// and `/`), Unicode look-alikes of `/ \ . ; %` (see separatorLookalike),
// `%` itself (servers that decode twice), and percent-encoded characters
// that never need encoding (unreserved characters, `/`). Servers differ on
// each of these: Tomcat drops `;params`, IIS takes `\` and a decoded `%5C`
// for `/`, and every server resolves `..` its own way.
func canonicalPath(u *url.URL) bool {
	p := u.Path
	if p == "" || p[0] != '/' || !utf8.ValidString(p) {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20, c == 0x7f, c == '\\', c == ';', c == '%':
			return false
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(p[i:])
			if separatorLookalike(r) {
				return false
			}
			i += n - 1
		case c == '/':
			seg := p[i+1:]
			if j := strings.IndexByte(seg, '/'); j >= 0 {
				seg = seg[:j]
			}
			if seg == "" && i+1 < len(p) {
				return false // "//"
			}
			// Dot segments, and names Windows shortens by their trailing
			// dots and spaces (IIS reads /logout. and /logout%20 as /logout).
			if seg != "" && (seg[len(seg)-1] == '.' || seg[len(seg)-1] == ' ') {
				return false
			}
		}
	}
	if u.RawPath == "" {
		return true // the path is forwarded in Go's own escaping: nothing needless
	}
	esc := u.EscapedPath()
	for i := 0; i < len(esc); i++ {
		if esc[i] != '%' {
			continue
		}
		if i+2 >= len(esc) {
			return false
		}
		if b := unhex(esc[i+1])<<4 | unhex(esc[i+2]); b == '/' || isUnreserved(b) {
			return false
		}
		i += 2
	}
	return true
}

// matchablePath reports whether a configured path (login_path,
// logout_path) is one a request path can equal: a local path in canonical
// form (see canonicalPath) without query or fragment. Any other value
// would silently never match.
func matchablePath(p string) bool {
	if !isLocalPath(p) || strings.ContainsAny(p, "?#") {
		return false
	}
	u, err := url.Parse(p)
	return err == nil && u.Path == p && canonicalPath(u)
}

// separatorLookalike reports characters that Windows' best-fit mapping
// (ANSI code pages) or Unicode compatibility normalization turn into `/`,
// `\`, `.`, `;` or `%`, so that a server behind the proxy may read
// `/static/..／admin` as `/admin`.
func separatorLookalike(r rune) bool {
	switch r {
	case '\uFF0F', '\u2215', '\u2044', '\u29F8', // ／ ∕ ⁄ ⧸
		'\uFF3C', '\u2216', '\u29F5', '\u29F9', '\uFE68', '\u00A5', '\u20A9', // ＼ ∖ ⧵ ⧹ ﹨ ¥ ₩
		'\uFF0E', '\uFE52', '\u2024', // ． ﹒ ․
		'\uFF1B', '\uFE54', '\u037E', // ； ﹔ ;
		'\uFF05', '\uFE6A': // ％ ﹪
		return true
	}
	return false
}

// isUnreserved reports RFC 3986's unreserved characters, which a canonical
// URI never percent-encodes.
func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '.' || b == '_' || b == '~'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// badPath answers a request whose path is not in canonical form. It is
// refused rather than redirected: what the clean form of `/a/..;/b` is
// depends on the server behind the proxy.
func (h *Handler) badPath(w http.ResponseWriter, r *http.Request) error {
	return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Bad request",
		Message: "This address contains a path form the server does not accept (such as /../, //, \\, ; or an encoded / or .). Use the link without them.",
		Links:   []pageLink{{Href: "/", Text: "Go to the start page"}}})
}

// pathMatcher matches request paths against patterns in the syntax of
// Caddy's path matcher (exact, `prefix*`, `*suffix`, `*middle*`, and
// path.Match globs; `%` compares the escaped path; placeholders), but case-
// sensitively and without cleaning the path: it runs on canonical paths only,
// so what it matches is exactly what is forwarded.
type pathMatcher []pathPattern

type pathPattern struct {
	kind    byte // '=' exact, '*' any, 'p' prefix, 's' suffix, 'c' contains, 'g' glob
	text    string
	escaped bool // compare against the escaped path
	placeh  bool // expand placeholders per request
}

// newPathMatcher checks the patterns; errors name the bad pattern.
func newPathMatcher(patterns []string) (pathMatcher, error) {
	m := make(pathMatcher, 0, len(patterns))
	for _, p := range patterns {
		// A request path starts with "/": any other pattern, a leading
		// placeholder too, would silently never match or match by chance.
		if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
			return nil, fmt.Errorf("%q must be a path pattern starting with / or *", p)
		}
		pp := pathPattern{text: p, escaped: strings.Contains(p, "%"), placeh: strings.Contains(p, "{")}
		if !pp.placeh {
			pp.kind = patternKind(p)
			if pp.kind == 'g' {
				if _, err := path.Match(p, ""); err != nil {
					return nil, fmt.Errorf("%q is not a valid path pattern: %v", p, err)
				}
			}
		}
		m = append(m, pp)
	}
	return m, nil
}

// patternKind classifies a pattern the way Caddy's path matcher does.
func patternKind(p string) byte {
	n := strings.Count(p, "*")
	switch {
	case p == "*":
		return '*'
	case n == 2 && len(p) > 1 && p[0] == '*' && p[len(p)-1] == '*':
		return 'c'
	case n == 1 && p[0] == '*':
		return 's'
	case n == 1 && p[len(p)-1] == '*':
		return 'p'
	case strings.ContainsAny(p, "*?[\\"):
		return 'g'
	}
	return '='
}

// match reports whether the request's path matches one of the patterns.
func (m pathMatcher) match(r *http.Request) bool {
	for _, pp := range m {
		kind, text := pp.kind, pp.text
		if pp.placeh {
			repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
			if repl == nil {
				continue
			}
			text = repl.ReplaceAll(text, "")
			kind = patternKind(text)
		}
		p := r.URL.Path
		if pp.escaped {
			p = r.URL.EscapedPath()
		}
		var ok bool
		switch kind {
		case '*':
			ok = true
		case '=':
			ok = p == text
		case 'p':
			ok = strings.HasPrefix(p, text[:len(text)-1])
		case 's':
			ok = strings.HasSuffix(p, text[1:])
		case 'c':
			ok = strings.Contains(p, text[1:len(text)-1])
		default:
			ok, _ = path.Match(text, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// isLogoutPath reports whether a (canonical) path is BMS's logout: the
// configured path or anything below it, in any letter case. BMS runs on
// servers that ignore case and a trailing slash, and that run a page for
// `page/extra` too, so for logout intercepting more is the safe side: a
// request BMS would take for its logout never reaches it without ending
// the K1 and proxy sessions as well.
func (h *Handler) isLogoutPath(p string) bool {
	if h.LogoutPath == "" {
		return false
	}
	lp := strings.TrimSuffix(h.LogoutPath, "/")
	if lp == "" {
		return p == "/"
	}
	if len(p) < len(lp) || !strings.EqualFold(p[:len(lp)], lp) {
		return false
	}
	return len(p) == len(lp) || p[len(lp)] == '/'
}
