package inject

import (
	"net/http"
	"strings"
)

// cspHeaders are the headers whose policies the injected style must pass.
var cspHeaders = []string{"Content-Security-Policy", "Content-Security-Policy-Report-Only"}

// allowStyle rewrites the page's CSP headers so that a style element with
// a fresh nonce passes them, and returns that nonce; "" when no policy
// restricts styles (the style element then needs none).
func allowStyle(hdr http.Header, newNonce func() string) string {
	nonce := ""
	for _, name := range cspHeaders {
		vals := hdr.Values(name)
		if len(vals) == 0 {
			continue
		}
		if nonce == "" {
			nonce = newNonce()
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
	return nonce
}

// cspNeedsNonce reports whether a rewritten policy names the nonce (else
// the style element needs none).
func cspNeedsNonce(hdr http.Header, nonce string) bool {
	for _, name := range cspHeaders {
		for _, v := range hdr.Values(name) {
			if strings.Contains(v, "'nonce-"+nonce+"'") {
				return true
			}
		}
	}
	return false
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
