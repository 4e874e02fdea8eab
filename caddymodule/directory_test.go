package caddymodule

import (
	"strings"
	"testing"
)

func TestParseUsers(t *testing.T) {
	d, err := parseUsers(strings.NewReader("email,bms_user,tenant,tenant_name,roles\n"+
		" Alice@Acme.Example ,alice,acme,Acme,admin;billing\nalice@acme.example,alice.labs,acme-labs,,\n"), 1)
	if err != nil {
		t.Fatal(err)
	}
	accs := d.byEmail["alice@acme.example"]
	if len(accs) != 2 || accs[0].roles != "admin,billing" || accs[1].TenantName != "acme-labs" || accs[1].Roles != nil {
		t.Fatalf("parsed: %+v %+v", accs[0], accs[1])
	}
}

func TestParseUsersErrors(t *testing.T) {
	const head = "email,bms_user,tenant,tenant_name,roles\n"
	for _, tc := range []struct{ in, want string }{
		{"", "line 1: empty file"},
		{"mail,user\n", "line 1"},
		{"email,bms_user,tenant,name,roles\n", "line 1: header must be"},
		{head + "a@x,a,t,T,\nnot-an-email,b,t,T,\n", "line 3: \"not-an-email\" is not an email address"},
		{head + "a@x,a,t,T,\na@x,b,t,T,\n", "line 3: a@x appears twice in tenant t"},
		{head + "a@x,,t,T,\n", "line 2: bms_user and tenant must not be empty"},
		{head + "a@x,a,t\n", "line 2"},
		{head + "a@x,\"a\rb\",t,T,\n", "line 2: control characters"},
	} {
		_, err := parseUsers(strings.NewReader(tc.in), 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestLocalTarget(t *testing.T) {
	for in, want := range map[string]string{
		"/dashboard":        "/dashboard",
		"/a/../b?x=1&y=%2F": "/b?x=1&y=%2F",
		"/tickets/":         "/tickets/",
		"/%2F%2Fevil.com":   "/evil.com",
		"/..//evil.com":     "/evil.com",
	} {
		if got, ok := localTarget(in); !ok || got != want {
			t.Errorf("localTarget(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "//evil.com", "/\\evil.com", "https://evil.com", "%2F%2Fevil.com", "/%5Cevil.com",
		"https://bms@evil.com", "http:evil.com", "/a\nb", "\\\\evil", "/\t/evil.com", "javascript:alert(1)"} {
		if got, ok := localTarget(in); ok {
			t.Errorf("localTarget(%q) accepted as %q", in, got)
		}
	}
}

func TestSameHeaderName(t *testing.T) {
	for _, k := range []string{"X-BMS-User", "x-bms-user", "X_BMS_User", "x_bms-USER"} {
		if !isIdentityHeader(k) {
			t.Errorf("%s not recognised as an identity header", k)
		}
	}
	for _, k := range []string{"X-BMS-Users", "X-BMS-Use", "Accept", "X-BMS-Version"} {
		if isIdentityHeader(k) {
			t.Errorf("%s taken for an identity header", k)
		}
	}
}

func TestNormalEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Bob@ACME.Example\t":    "bob@acme.example",
		"bob@acme.example":       "bob@acme.example",
		"\u212aate@acme.example": "\u212aate@acme.example", // Kelvin sign stays
		"\u0130an@acme.example":  "\u0130an@acme.example",  // so does U+0130
		"J\u00d6RG@x":            "j\u00d6rg@x",
		"\u00a0bob@x":            "\u00a0bob@x",
	} {
		if got := normalEmail(in); got != want {
			t.Errorf("normalEmail(%q) = %q, want %q", in, got, want)
		}
	}
	// The users file refuses emails with spaces of any kind.
	for _, e := range []string{"bob\u00a0@x", "bob\u3000@x", "bob@x\u0085"} {
		if _, err := parseUsers(strings.NewReader("email,bms_user,tenant,tenant_name,roles\n"+e+",b,t,T,\n"), 1); err == nil {
			t.Errorf("%q accepted as an email", e)
		}
	}
}
