package storetest_test

import (
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
	"github.com/k1sso/k1sso/store/storetest"
)

// The suite passes on k1sso's default store, on one folder per run.
func TestRunOnCaddyStore(t *testing.T) {
	dir := t.TempDir()
	storetest.Run(t, func(t *testing.T, opts store.Options) store.Store {
		return caddystore.New(&certmagic.FileStorage{Path: dir}, opts)
	})
}
