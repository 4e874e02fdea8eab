package k1dev_test

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

// TestMissingTOTPSecret: a user without totp_secret is told that it is
// missing and how to make one, not that "" is not base32.
func TestMissingTOTPSecret(t *testing.T) {
	c := k1dev.DefaultConfig()
	c.Users[1].TOTPSecret = ""
	p := filepath.Join(t.TempDir(), "k1dev.json")
	data, _ := json.Marshal(c)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := k1dev.LoadConfig(p)
	if err == nil {
		t.Fatal("a user without totp_secret was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, `user "bob": missing totp_secret`) || strings.Contains(msg, "base32:") || !strings.Contains(msg, "base32") {
		t.Errorf("error = %q, want it to say bob's totp_secret is missing and how to make a base32 one", msg)
	}
	if strings.Contains(msg, "not base32") {
		t.Errorf("error = %q: a missing secret is reported as a malformed one", msg)
	}

	// A malformed one still says so, without echoing the secret.
	c.Users[1].TOTPSecret = "not base32 s3cr3t"
	if _, err := k1dev.New("http://127.0.0.1:9000", c); err == nil || !strings.Contains(err.Error(), `user "bob": totp_secret is not base32`) || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("malformed secret: err = %v", err)
	}
}

// TestExampleConfig: examples/k1dev.json loads, and registers the demo
// client on an https origin (Caddy's `tls internal`), as docs/k1dev.md says.
func TestExampleConfig(t *testing.T) {
	cfg, err := k1dev.LoadConfig(filepath.Join("..", "examples", "k1dev.json"))
	if err != nil {
		t.Fatalf("loading examples/k1dev.json: %v", err)
	}
	if got := cfg.Usernames(); strings.Join(got, ",") != "alice,bob,carol" {
		t.Errorf("users = %v, want alice, bob and carol (the rows of examples/users.csv)", got)
	}
	if len(cfg.Clients) != 1 || cfg.Clients[0].ID != "bms-proxy" {
		t.Fatalf("clients = %+v, want bms-proxy", cfg.Clients)
	}
	cl := cfg.Clients[0]
	for _, u := range append(append([]string{cl.InitiateLoginURI, cl.BackchannelLogoutURI, cl.FrontchannelLogoutURI}, cl.RedirectURIs...), cl.PostLogoutRedirectURIs...) {
		if !strings.HasPrefix(u, "https://localhost:8443/") {
			t.Errorf("client URI %q is not on https://localhost:8443", u)
		}
	}
	if _, err := k1dev.New("http://127.0.0.1:9000", cfg); err != nil {
		t.Errorf("New with the example: %v", err)
	}
}

// tlsRP is an RP on https whose certificate only its own CA vouches for,
// as a site on Caddy's `tls internal` is.
func tlsRP(t *testing.T) (*rp, string) {
	t.Helper()
	r := &rp{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /.k1sso/backchannel-logout", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.logoutTokens = append(r.logoutTokens, req.PostFormValue("logout_token"))
		r.mu.Unlock()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {})
	r.Server = httptest.NewTLSServer(mux)
	t.Cleanup(r.Close)
	caFile := filepath.Join(t.TempDir(), "root.crt")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate().Raw})
	if err := os.WriteFile(caFile, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return r, caFile
}

// TestBackchannelLogoutTrustsCAFile: back-channel logout to an https site
// with a local CA fails without that CA and is delivered with it
// (LoadCAFile, WithRootCAs: the -ca-file flag).
func TestBackchannelLogoutTrustsCAFile(t *testing.T) {
	r, caFile := tlsRP(t)
	cfg := k1dev.DefaultConfig()
	cfg.SetClientBaseURL("bms-proxy", r.URL)

	login := func(k1 *k1devtest.Instance) {
		t.Helper()
		c := k1devtest.NewClient()
		c.Transport = r.Client().Transport // the browser trusts the site
		e := newEnvWith(t, k1, r)
		if _, err := k1.Login(c, e.authURL(newFlow()), "bob", "Acme MSP", "bob-pass"); err != nil {
			t.Fatalf("login: %v", err)
		}
	}

	untrusting := k1devtest.Start(t, cfg)
	login(untrusting)
	err := untrusting.Server.EndSessions("bob")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("EndSessions without the CA: err = %v, want a certificate error", err)
	}
	if n := len(r.tokens()); n != 0 {
		t.Fatalf("%d logout tokens delivered without trusting the CA", n)
	}

	pool, err := k1dev.LoadCAFile(caFile)
	if err != nil {
		t.Fatalf("LoadCAFile: %v", err)
	}
	trusting := k1devtest.Start(t, cfg, k1dev.WithRootCAs(pool))
	login(trusting)
	if err := trusting.Server.EndSessions("bob"); err != nil {
		t.Errorf("EndSessions with the CA: %v", err)
	}
	if n := len(r.tokens()); n != 1 {
		t.Errorf("%d logout tokens delivered with the CA, want 1", n)
	}

	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.crt"), writeFile(t, "empty.crt", "no pem here")} {
		if _, err := k1dev.LoadCAFile(bad); err == nil || !strings.Contains(err.Error(), filepath.Base(bad)) {
			t.Errorf("LoadCAFile(%s): err = %v, want one naming the file", filepath.Base(bad), err)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
