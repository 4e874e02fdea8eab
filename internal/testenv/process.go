package testenv

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// CaddyBinary builds ./cmd/caddy once per test binary and returns its path.
// The binary lives in one fixed place per checkout under the temp folder,
// replaced atomically, so repeated runs leave one file behind, not one per
// run.
func CaddyBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		// One place per checkout: runs from two checkouts never swap binaries.
		sum := sha256.Sum256([]byte(RepoRoot()))
		dir := filepath.Join(os.TempDir(), "k1sso-test-caddy-"+hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			buildErr = err
			return
		}
		tmp, err := os.CreateTemp(dir, "caddy-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-o", tmp.Name(), "./cmd/caddy")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			buildErr = fmt.Errorf("building ./cmd/caddy: %v\n%s", err, out)
			return
		}
		buildPath = filepath.Join(dir, "caddy")
		buildErr = os.Rename(tmp.Name(), buildPath)
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return buildPath
}

// Process is Caddy running as a separate process (the built binary), for
// tests with several instances.
type Process struct {
	URL     string
	Port    int
	Storage string

	tb      testing.TB
	bin     string // "": CaddyBinary
	config  string
	xdg     string
	mu      sync.Mutex
	cmd     *exec.Cmd
	out     *bytes.Buffer
	stopped chan struct{}
}

// StartProcess runs the site as a separate Caddy process and waits until
// it answers. It is stopped when the test ends; its output is printed when
// the test failed.
func StartProcess(tb testing.TB, s Site) *Process {
	tb.Helper()
	p := RunCaddyfile(tb, s.Caddyfile(tb), s.Port)
	p.Storage = s.Storage
	return p
}

// RunCaddyfile runs the built Caddy with a Caddyfile of the caller's whose
// sites listen on 127.0.0.1:port, and waits until it answers there. Like
// StartProcess, it stops Caddy when the test ends and prints its output
// when the test failed.
func RunCaddyfile(tb testing.TB, caddyfile string, port int) *Process {
	tb.Helper()
	return RunCaddyfileBin(tb, "", caddyfile, port)
}

// RunCaddyfileBin is RunCaddyfile with another Caddy binary (see
// CaddyBinaryTags); "" is CaddyBinary's.
func RunCaddyfileBin(tb testing.TB, bin, caddyfile string, port int) *Process {
	tb.Helper()
	dir := tb.TempDir()
	p := &Process{
		bin:    bin,
		URL:    fmt.Sprintf("http://127.0.0.1:%d", port),
		Port:   port,
		tb:     tb,
		config: filepath.Join(dir, "Caddyfile"),
		xdg:    dir,
	}
	if err := os.WriteFile(p.config, []byte(caddyfile), 0o600); err != nil {
		tb.Fatal(err)
	}
	p.Start()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("caddy on port %d said:\n%s", p.Port, p.Output())
		}
	})
	return p
}

// Start starts the process (again, after Stop) and waits until it answers.
func (p *Process) Start() {
	p.tb.Helper()
	bin := p.bin
	if bin == "" {
		bin = CaddyBinary(p.tb)
	}
	p.mu.Lock()
	if p.out == nil {
		p.out = &bytes.Buffer{}
	}
	cmd := exec.Command(bin, "run", "--config", p.config, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+p.xdg, "XDG_DATA_HOME="+p.xdg, "HOME="+p.xdg)
	cmd.Stdout, cmd.Stderr = &lockedWriter{mu: &p.mu, w: p.out}, &lockedWriter{mu: &p.mu, w: p.out}
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.tb.Fatalf("starting caddy: %v", err)
	}
	p.cmd = cmd
	stopped := make(chan struct{})
	p.stopped = stopped
	p.mu.Unlock()
	go func() { _ = cmd.Wait(); close(stopped) }()

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-stopped:
			p.tb.Fatalf("caddy on port %d exited at start:\n%s", p.Port, p.Output())
		default:
		}
		if answers(p.URL + "/.k1sso/jwks.json") {
			return
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("caddy on port %d did not come up:\n%s", p.Port, p.Output())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Stop ends the process (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (p *Process) Stop() {
	p.mu.Lock()
	cmd, stopped := p.cmd, p.stopped
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-stopped
	}
}

// Output is what the process wrote so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
