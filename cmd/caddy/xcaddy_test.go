package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

// xcaddyTimeout bounds `make build-xcaddy`: a cold build compiles all of
// Caddy (about 4 CPU minutes). K1SSO_XCADDY_TIMEOUT (a Go duration)
// overrides it.
const xcaddyTimeout = 12 * time.Minute

// TestXcaddyBuild builds Caddy with the module the way operators do (make
// build-xcaddy), then checks that the binary lists the module and adapts the
// root Caddyfile to the same JSON as this repository's own cmd/caddy.
func TestXcaddyBuild(t *testing.T) {
	root := testenv.RepoRoot()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed to run `make build-xcaddy`: apt-get install make")
	}
	timeout := xcaddyTimeout
	if v := os.Getenv("K1SSO_XCADDY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("K1SSO_XCADDY_TIMEOUT: %v", err)
		}
		timeout = d
	}
	dir := t.TempDir()
	xc := filepath.Join(dir, "caddy-xcaddy")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "make", "build-xcaddy", "XCADDY_OUTPUT="+xc)
	cmd.Dir = root
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make build-xcaddy (after %s): %v\n%s", time.Since(start).Round(time.Second), err, tail(out, 4000))
	}
	t.Logf("make build-xcaddy took %s", time.Since(start).Round(time.Second))

	mods := run(t, root, xc, "list-modules")
	if !strings.Contains("\n"+mods+"\n", "\nhttp.handlers.k1sso\n") {
		t.Fatalf("caddy list-modules of the xcaddy build does not list http.handlers.k1sso:\n%s", tail([]byte(mods), 2000))
	}

	own := filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", own, "./cmd/caddy")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/caddy: %v\n%s", err, b)
	}
	a := adapt(t, root, xc)
	b := adapt(t, root, own)
	if !bytes.Equal(a, b) {
		t.Fatalf("the xcaddy build and cmd/caddy adapt the Caddyfile differently:\nxcaddy:    %s\ncmd/caddy: %s", a, b)
	}
	if !bytes.Contains(a, []byte(`"handler":"k1sso"`)) || !bytes.Contains(a, []byte(`{env.K1_CLIENT_SECRET}`)) {
		t.Fatalf("adapted JSON lacks the k1sso handler or its secret placeholder:\n%s", a)
	}
}

// adapt runs `caddy adapt --config Caddyfile` and returns the compact JSON.
func adapt(t *testing.T, dir, bin string) []byte {
	t.Helper()
	out := run(t, dir, bin, "adapt", "--config", "Caddyfile")
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(out)); err != nil {
		t.Fatalf("%s adapt: not JSON: %v\n%s", filepath.Base(bin), err, tail([]byte(out), 2000))
	}
	return buf.Bytes()
}

func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(stderr.Bytes(), 2000))
	}
	return string(out)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
