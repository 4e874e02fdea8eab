package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	tagBuildsMu sync.Mutex
	tagBuilds   = map[string]*tagBuild{}
)

type tagBuild struct {
	once sync.Once
	path string
	err  error
}

// CaddyBinaryTags builds ./cmd/caddy with build tags (once per test binary
// and tag list) and returns its path, like CaddyBinary. The browser tests
// use `k1sso_shortunits` for an idle timeout of seconds.
func CaddyBinaryTags(tb testing.TB, tags string) string {
	tb.Helper()
	tagBuildsMu.Lock()
	b := tagBuilds[tags]
	if b == nil {
		b = &tagBuild{}
		tagBuilds[tags] = b
	}
	tagBuildsMu.Unlock()
	b.once.Do(func() {
		sum := sha256.Sum256([]byte(RepoRoot() + "\x00" + tags))
		dir := filepath.Join(os.TempDir(), "k1sso-test-caddy-"+hex.EncodeToString(sum[:6]))
		if b.err = os.MkdirAll(dir, 0o700); b.err != nil {
			return
		}
		tmp, err := os.CreateTemp(dir, "caddy-*")
		if err != nil {
			b.err = err
			return
		}
		tmp.Close()
		cmd := exec.Command("go", "build", "-tags", tags, "-o", tmp.Name(), "./cmd/caddy")
		cmd.Dir = RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			b.err = fmt.Errorf("building ./cmd/caddy with tags %s: %v\n%s", tags, err, out)
			return
		}
		b.path = filepath.Join(dir, "caddy")
		b.err = os.Rename(tmp.Name(), b.path)
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}
