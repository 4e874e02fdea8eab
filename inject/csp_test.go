package inject

import (
	"strings"
	"testing"
)

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
