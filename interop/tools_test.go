package interop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

// tool is a program built from one of the tools modules (tools/<name>),
// whose go.mod pins it and keeps its dependencies out of k1sso's go.mod.
type tool struct {
	name string // binary name
	pkg  string // main package
	tags string // build tags
	cgo  bool   // CGO_ENABLED=1 (Hydra's in-memory database is SQLite)

	ctx  context.Context // cancelled when the tests are done
	once sync.Once
	done chan struct{}
	path string
	err  error
}

// hydraTool is Ory Hydra as tools/hydra/go.mod pins it, with SQLite for
// DSN=memory (the tags of Hydra's own release build).
var hydraTool = &tool{name: "hydra", pkg: "github.com/ory/hydra/v2", tags: "sqlite,sqlite_omit_load_extension", cgo: true}

// TestMain starts the Hydra build at once, so a cold build (minutes) runs
// while this package's other tests run, unless -run selects no Hydra test;
// then it stops the OPs the tests started.
func TestMain(m *testing.M) {
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	hydraTool.ctx = ctx
	if f := flag.Lookup("test.run"); f == nil || runs(f.Value.String(), "TestHydra") {
		hydraTool.start()
	}
	code := m.Run()
	cancel() // a build still running when the tests are done is not needed
	if hydraTool.done != nil {
		<-hydraTool.done
	}
	stopHydra()
	os.Exit(code)
}

// runs reports whether the -run pattern may select tests named prefix...:
// an empty pattern, or one whose first part matches prefix or names a test
// that starts with it.
func runs(pattern, prefix string) bool {
	first, _, _ := strings.Cut(pattern, "/")
	if first == "" {
		return true
	}
	re, err := regexp.Compile(first)
	return err != nil || re.MatchString(prefix) || strings.Contains(first, prefix)
}

// start builds the tool in the background (once) unless the binary for
// exactly this go.mod, go.sum, tags and Go version is already there. The
// binary lives in one place per version under the temp folder and is
// replaced atomically, so concurrent runs never see half a file.
func (tl *tool) start() {
	tl.once.Do(func() {
		tl.done = make(chan struct{})
		go func() {
			defer close(tl.done)
			tl.path, tl.err = tl.build(tl.ctx)
		}()
	})
}

func (tl *tool) build(ctx context.Context) (string, error) {
	dir := filepath.Join(testenv.RepoRoot(), "interop", "tools", tl.name)
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("reading the %s tools module: %w", tl.name, err)
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s/%s", tl.tags, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	out := filepath.Join(os.TempDir(), "k1sso-interop-"+hex.EncodeToString(h.Sum(nil)[:8]))
	bin := filepath.Join(out, tl.name)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(out, tl.name+"-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", tl.tags, "-ldflags", "-s -w", "-o", tmp.Name(), tl.pkg)
	cmd.Dir = dir
	// Its own process group, so that a cancelled build ends with its
	// compilers instead of leaving them running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cgo := "0"
	if tl.cgo {
		cgo = "1"
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("building %s (%s): %v\n%s", tl.name, tl.pkg, err, b)
	}
	fmt.Fprintf(os.Stderr, "interop: built %s in %s\n", tl.name, time.Since(start).Round(time.Second))
	return bin, os.Rename(tmp.Name(), bin)
}

// binary waits for the build and returns the binary's path; a failed build
// fails the test (CI must never skip these tests).
func (tl *tool) binary(tb testing.TB) string {
	tb.Helper()
	tl.start()
	select {
	case <-tl.done:
	case <-time.After(12 * time.Minute):
		tb.Fatalf("building %s took more than 12 minutes", tl.name)
	}
	if tl.err != nil {
		tb.Fatal(tl.err)
	}
	return tl.path
}
