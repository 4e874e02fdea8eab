package caddymodule_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// TestEmailMatchIsASCIICaseInsensitive: a K1 email matches a users-file
// email when they differ only in ASCII letter case. Unicode case rules would
// also map other letters onto ASCII ones (the Kelvin sign U+212A lower-cases
// to "k"), so a K1 account "\u212aate@..." would sign in as kate.
func TestEmailMatchIsASCIICaseInsensitive(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users.csv")
	err := os.WriteFile(users, []byte("email,bms_user,tenant,tenant_name,roles\n"+
		"kate@acme.example,kate,acme,Acme,\n"+
		"\u212aim@acme.example,kim,acme,Acme,\n"+
		"J\u00d6RG@acme.example,joerg,acme,Acme,\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostile{op: hostileop.Start(t), up: testenv.NewUpstream(t)}
	h.s = testenv.Site{K1: h.op.URL, Upstream: h.up.URL, Users: users}
	h.px = testenv.StartCaddy(t, h.s)
	for _, tc := range []struct{ email, user string }{
		{"kate@acme.example", "kate"},
		{"KATE@Acme.EXAMPLE", "kate"},
		{"\u212aate@acme.example", ""}, // Kelvin sign, not k
		{"kim@acme.example", ""},
		{"\u212aim@acme.example", "kim"},
		{"\u212aIM@ACME.example", "kim"},
		{"j\u00d6rg@acme.example", "joerg"},
		{"j\u00f6rg@acme.example", ""}, // non-ASCII letters keep their case
		{"\u00a0kate@acme.example", ""},
	} {
		h.op.Set(hostileop.Behavior{Claims: set("email", tc.email)})
		h.up.Reset()
		_, resp := h.login(t)
		got := ""
		if resp.StatusCode == 200 {
			got = testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
		} else {
			resp.Body.Close()
		}
		if got != tc.user || (tc.user == "" && resp.StatusCode != 403) {
			t.Errorf("K1 email %q: %d as %q, want %q", tc.email, resp.StatusCode, got, tc.user)
		}
	}
}
