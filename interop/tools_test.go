package interop

import (
	"context"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

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
