package k1dev_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

func TestLoopbackRedirectURIs(t *testing.T) {
	k1 := k1devtest.Start(t, nil) // bms-proxy registered on localhost:8080 and 127.0.0.1:8080
	c := noFollow(k1devtest.NewClient())
	authorize := func(redirect string) (int, string) {
		q := url.Values{"client_id": {"bms-proxy"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"}, "state": {"s"}}
		status, loc, _ := get(t, c, k1.URL+"/authorize?"+q.Encode())
		return status, loc
	}
	for _, tc := range []struct {
		redirect string
		ok       bool
	}{
		{"http://127.0.0.1:8080/.k1sso/callback", true},
		{"http://localhost:8080/.k1sso/callback", true},
		{"http://127.0.0.1:54321/.k1sso/callback", true},
		{"http://localhost:1/.k1sso/callback", true},
		{"http://127.0.0.1:54321/.k1sso/callback/x", false},
		{"http://127.0.0.1:54321/other", false},
		{"http://127.0.0.1/.k1sso/callback", false},
		{"http://127.0.0.1:123456/.k1sso/callback", false},
		{"http://evil.example:8080/.k1sso/callback", false},
		{"http://127.0.0.1:1@evil.example/.k1sso/callback", false},
		{"http://127.0.0.1:8080.evil.example/.k1sso/callback", false},
		{"https://127.0.0.1:8080/.k1sso/callback", false},
	} {
		status, loc := authorize(tc.redirect)
		accepted := status == http.StatusFound && strings.HasPrefix(loc, "/login?")
		if accepted != tc.ok {
			t.Errorf("redirect_uri %s: status %d Location %q, want accepted=%v", tc.redirect, status, loc, tc.ok)
		}
		if !tc.ok && loc != "" {
			t.Errorf("redirect_uri %s: refused but redirected to %q", tc.redirect, loc)
		}
	}
}

func TestLoopbackFlowOnOtherPort(t *testing.T) {
	// Full flow with the default registration and an RP on a free port:
	// the redirect on the other port is accepted and the code works.
	e := newEnv(t, false)
	_, idt, _ := e.login(t, "bob", "Acme MSP", "bob-pass")
	if claimsOf(t, idt).Sub != "k1|bob" {
		t.Errorf("sub = %q", claimsOf(t, idt).Sub)
	}
}

func TestRotateKey(t *testing.T) {
	e := newEnv(t, true)
	c, _, raw1 := e.login(t, "alice", "Acme MSP", "alice-pass")
	if err := e.k1.Server.RotateKey(); err != nil {
		t.Fatal(err)
	}
	f := newFlow()
	resp, err := c.Get(e.authURL(f))
	if err != nil {
		t.Fatal(err)
	}
	_, _, raw2 := e.exchange(t, e.callback(t, resp, f), f) // verifies with the new key
	if kid(t, raw1) == kid(t, raw2) || kid(t, raw2) == "" {
		t.Fatalf("kid did not change: %q", kid(t, raw2))
	}
	// The old token still verifies (old key stays in the JWKS).
	if _, err := e.prov.Verifier(&oidc.Config{ClientID: "bms-proxy"}).Verify(e.ctx, raw1); err != nil {
		t.Fatalf("old token after rotation: %v", err)
	}
	// Logout tokens are signed with the new key.
	e.k1.Server.EndSessions("alice")
	if toks := e.rp.tokens(); len(toks) != 1 || kid(t, toks[0]) != kid(t, raw2) {
		t.Fatalf("logout tokens %d, kid mismatch", len(toks))
	}
	verifyLogoutToken(t, e, e.rp.tokens()[0])

	// POST /dev/rotate-key from loopback rotates too.
	resp, err = http.Post(e.k1.URL+"/dev/rotate-key", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/dev/rotate-key: %d", resp.StatusCode)
	}
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	_, _, body := get(t, http.DefaultClient, e.k1.URL+"/keys")
	if err := json.Unmarshal([]byte(body), &jwks); err != nil {
		t.Fatal(err)
	}
	if len(jwks.Keys) != 3 {
		t.Fatalf("JWKS has %d keys, want 3", len(jwks.Keys))
	}
	for _, k := range jwks.Keys {
		if k.Kid == "" || k.Alg != "RS256" {
			t.Errorf("JWKS key %+v", k)
		}
	}
}

// kid returns the kid header of a compact JWS.
func kid(t *testing.T, raw string) string {
	t.Helper()
	var h struct {
		Kid string `json:"kid"`
	}
	head, _, _ := strings.Cut(raw, ".")
	data, err := base64URL(head)
	if err != nil || json.Unmarshal(data, &h) != nil {
		t.Fatalf("bad JWS header")
	}
	return h.Kid
}

func TestConfig(t *testing.T) {
	a, b := k1dev.DefaultConfig(), k1dev.DefaultConfig()
	a.Users[0].Tenants["BMS"][0].ID = "changed"
	a.Clients[0].RedirectURIs[0] = "changed"
	if b.Users[0].Tenants["BMS"][0].ID != "acme" || b.Clients[0].RedirectURIs[0] == "changed" {
		t.Fatal("DefaultConfig shares state between calls")
	}

	// Round trip through a file.
	dir := t.TempDir()
	path := filepath.Join(dir, "k1dev.json")
	data, _ := json.Marshal(k1dev.DefaultConfig())
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := k1dev.LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	if len(cfg.Users) != 3 || cfg.Users[0].Tenants["BMS"][1].Name != "Acme Labs" || !cfg.Users[0].Admin {
		t.Errorf("loaded %+v", cfg.Users)
	}

	// Bad configs name the problem.
	for name, mutate := range map[string]func(*k1dev.Config){
		"unknown company": func(c *k1dev.Config) { c.Users[0].Company = "Nope" },
		"totp_secret":     func(c *k1dev.Config) { c.Users[1].TOTPSecret = "not base32!" },
		"unknown client":  func(c *k1dev.Config) { c.Modules[0].ClientID = "nope" },
	} {
		c := k1dev.DefaultConfig()
		mutate(c)
		data, _ := json.Marshal(c)
		p := filepath.Join(dir, "bad.json")
		_ = os.WriteFile(p, data, 0o600)
		if _, err := k1dev.LoadConfig(p); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
		if _, err := k1dev.New("http://127.0.0.1:9000", c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "unknown.json"), []byte(`{"userz":[]}`), 0o600)
	if _, err := k1dev.LoadConfig(filepath.Join(dir, "unknown.json")); err == nil {
		t.Error("unknown field accepted")
	}

	// SetClientBaseURL moves every URI and the module's base URL.
	c := k1dev.DefaultConfig()
	c.SetClientBaseURL("bms-proxy", "http://127.0.0.1:4321")
	cl := c.Clients[0]
	if strings.Join(cl.RedirectURIs, " ") != "http://127.0.0.1:4321/.k1sso/callback" ||
		strings.Join(cl.PostLogoutRedirectURIs, " ") != "http://127.0.0.1:4321/login http://127.0.0.1:4321/" ||
		cl.InitiateLoginURI != "http://127.0.0.1:4321/.k1sso/initiate" ||
		cl.BackchannelLogoutURI != "http://127.0.0.1:4321/.k1sso/backchannel-logout" ||
		cl.FrontchannelLogoutURI != "http://127.0.0.1:4321/.k1sso/frontchannel-logout" ||
		c.Modules[0].BaseURL != "http://127.0.0.1:4321" {
		t.Errorf("after SetClientBaseURL: %+v %+v", cl, c.Modules[0])
	}
}

func TestTOTPCommandCode(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	code, err := k1.Server.TOTP("alice")
	if err != nil || len(code) != 6 {
		t.Fatalf("TOTP = %q, %v", code, err)
	}
	if _, err := k1.Server.TOTP("nobody"); err == nil {
		t.Error("TOTP of an unknown user succeeded")
	}
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
