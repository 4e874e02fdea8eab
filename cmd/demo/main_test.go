package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/k1sso/k1sso/k1dev"
)

func TestAdaptRootCaddyfile(t *testing.T) {
	for _, e := range envDefaults {
		if os.Getenv(e.name) == "" {
			t.Setenv(e.name, e.value)
		}
	}
	cfg, err := adaptCaddyfile(filepath.Join("..", "..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"127.0.0.1:8080"`, `"handler":"k1sso"`, `"reverse_proxy"`, `127.0.0.1:8081`} {
		if !bytes.Contains(cfg, []byte(want)) {
			t.Errorf("adapted config lacks %s:\n%s", want, cfg)
		}
	}
}

func TestAdaptCaddyfileErrors(t *testing.T) {
	if _, err := adaptCaddyfile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "reading caddyfile") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(bad, []byte(":8080 {\n\tno_such_directive\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := adaptCaddyfile(bad); err == nil || !strings.Contains(err.Error(), "no_such_directive") {
		t.Errorf("bad file: %v", err)
	}
}

func TestBanner(t *testing.T) {
	var buf bytes.Buffer
	printBanner(&buf, k1dev.DefaultConfig(), "Caddyfile")
	out := buf.String()
	for _, want := range []string{
		"http://localhost:8080", "http://127.0.0.1:9000",
		"alice", "Acme MSP", "alice-pass", "bob-pass", "Other Co", "carol-pass",
		"go run ./cmd/k1dev totp -user alice",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
}

func TestDemoCookieSecretLength(t *testing.T) {
	if len(demoCookieSecret) < 32 {
		t.Errorf("demo cookie secret has %d bytes, the module needs >= 32", len(demoCookieSecret))
	}
}
