package inject

import (
	"strings"
	"testing"
)

// FuzzRewriter: for any page cut at any point, the rewriter's output is
// the page with the snippet inserted at most once, the same whatever the
// cut, and before the first </body> when it looks only for that.
func FuzzRewriter(f *testing.F) {
	f.Add(`<html><body><span id="user-name">bob</span></body></html>`, uint16(20), true)
	f.Add(`<img id='user-name' src=x></BODY>`, uint16(3), true)
	f.Add(`<div id="user-name"><b>x</b></div>`, uint16(0), true)
	f.Add(`<p>x</p></body>`, uint16(9), false)
	f.Add(`</bo`+`dy>`, uint16(2), false)
	f.Fuzz(func(t *testing.T, page string, cut uint16, anchor bool) {
		kind := loginLink
		if anchor {
			kind = launcher
		}
		snip := "\x00SNIP\x00"
		kind.sn = snippets{after: []byte(snip), bodyEnd: []byte(snip)}
		whole, _ := rewrite(t, kind, []byte(page))
		k := int(cut) % (len(page) + 1)
		split, _ := rewrite(t, kind, []byte(page[:k]), []byte(page[k:]))
		if split != whole {
			t.Fatalf("cut at %d: %q, in one write %q", k, split, whole)
		}
		if whole == page {
			if !anchor && indexFold([]byte(page), markBodyEnd) >= 0 {
				t.Fatalf("a page with </body> got no snippet: %q", page)
			}
			return
		}
		if len(whole) != len(page)+len(snip) {
			t.Fatalf("output %q is not the page plus one snippet", whole)
		}
		at := -1
		for i := 0; i+len(snip) <= len(whole); i++ {
			if whole[i:i+len(snip)] == snip && whole[:i]+whole[i+len(snip):] == page {
				at = i
				break
			}
		}
		if at < 0 {
			t.Fatalf("output %q is not the page plus one snippet", whole)
		}
		if !anchor && at != indexFold([]byte(page), markBodyEnd) {
			t.Fatalf("snippet at %d, first </body> at %d: %q", at, indexFold([]byte(page), markBodyEnd), whole)
		}
	})
}

// FuzzCSPAllowStyleNonce: whatever the policy, the script sources of each
// of its policies come out as they went in, and default-src keeps its
// value, so the style nonce never allows a script.
func FuzzCSPAllowStyleNonce(f *testing.F) {
	for _, s := range []string{"default-src 'none'", "style-src 'self'; script-src 'nonce-a'", "default-src 'self', style-src-elem 'none'", "DEFAULT-SRC\t*;;", "style-src 'unsafe-inline'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got, changed := cspAllowStyleNonce(header, "N")
		if changed != (got != header) {
			t.Fatalf("%q: changed %v, got %q", header, changed, got)
		}
		in, out := strings.Split(header, ","), strings.Split(got, ",")
		if len(in) != len(out) {
			t.Fatalf("%q: %d policies became %d", header, len(in), len(out))
		}
		for i := range in {
			if a, b := scriptSources(in[i]), scriptSources(out[i]); a != b {
				t.Fatalf("%q: script sources %q became %q", header, a, b)
			}
			if a, b := directive(in[i], "default-src"), directive(out[i], "default-src"); a != b {
				t.Fatalf("%q: default-src %q became %q", header, a, b)
			}
		}
	})
}

// directive is the value of the first directive called name in a policy,
// as browsers read it.
func directive(policy, name string) string {
	for _, d := range strings.Split(policy, ";") {
		if f := cspFields(d); len(f) > 0 && strings.EqualFold(f[0], name) {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}
