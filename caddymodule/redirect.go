package caddymodule

import (
	"net/url"
	"path"
	"strings"
)

// maxTarget bounds the length of a redirect target.
const maxTarget = 2048

// localTarget turns raw into a safe same-origin redirect target (path and
// query), or reports false. It refuses anything a browser could read as
// another origin: scheme or host, "//x" and "/\x" (and their encoded
// forms), userinfo, backslashes and control characters. Dot segments are
// resolved first, so "/..//evil" cannot become "//evil".
func localTarget(raw string) (string, bool) {
	if raw == "" || raw[0] != '/' || len(raw) > maxTarget {
		return "", false
	}
	if len(raw) > 1 && (raw[1] == '/' || raw[1] == '\\') {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if strings.ContainsAny(u.Path, "\\") {
		return "", false
	}
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && clean != "/" {
		clean += "/"
	}
	out := &url.URL{Path: clean, RawQuery: u.RawQuery}
	s := out.RequestURI()
	// The limit holds for the escaped result too, so a target accepted
	// once is accepted again as it is (rd round trips through URLs).
	if len(s) > maxTarget || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return "", false
	}
	return s, true
}

// isLocalPath reports whether p is a safe local redirect target as given.
func isLocalPath(p string) bool {
	_, ok := localTarget(p)
	return ok
}

// redirectTarget returns where to send the browser for a requested rd: the
// cleaned local path, or the landing page when rd is missing or unsafe.
func (h *Handler) redirectTarget(rd string) string {
	if t, ok := localTarget(rd); ok {
		return t
	}
	return h.cfg.landingPage
}

// insideExternal returns the local part of an absolute URL that lies inside
// the external URL (same scheme, host and port), or reports false.
func (h *Handler) insideExternal(site origin, raw string) (string, bool) {
	if strings.HasPrefix(raw, "/") {
		return localTarget(raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	base := site.url()
	if !strings.EqualFold(u.Scheme, base.Scheme) || !sameHost(u, base) {
		return "", false
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return localTarget(p)
}

// sameHost compares hosts case-insensitively, with default ports implied.
func sameHost(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		if strings.EqualFold(u.Scheme, "https") {
			return "443"
		}
		return "80"
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}
