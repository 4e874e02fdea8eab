package caddymodule

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/store"
)

// sharedPool holds the state that must outlive a config reload: decoded
// sessions, the K1 client with its discovery and keys, the directory and the
// used states. Keyed by poolKey, which never contains a raw secret.
var sharedPool = caddy.NewUsagePool()

// sessionCacheSize bounds the decoded-session cache. An entry is about
// 440 bytes of live heap (BenchmarkSessionMemory: no ID token, and the
// assertion as its signature only), so 100k entries are about 45 MB.
const sessionCacheSize = 100_000

// shared is the pooled state of one configuration.
type shared struct {
	cfg *config
	// now is the time of sessions and revocations (sharedParts.clock).
	now      func() time.Time
	codecs   *cookieCodecs
	sessions *lru.Cache[cacheKey, *sessionEntry]
	// lastIssuer is the last assertion issuer built from a request's
	// origin (no external_url), shared by the sessions that use it.
	lastIssuer atomic.Pointer[string]
	k1         *k1Client
	dir        *directory
	store      store.Store
	// revocations is this instance's copy of every revocation, the only
	// thing the hot path reads; revoker keeps it in sync with store.
	revocations *revocationSet
	revoker     *revoker
	signer      *assertionSigner
	used        *usedStates
	rechecks    *recheckQueue // recheck.go
	// integration caches the tenants' integration switches, read from
	// store (integration.go).
	integration *integrationCache
	// tenants indexes dir's tenants, rebuilt when dir is reloaded
	// (directory.go).
	tenants tenantIndex
	// lifetime (seconds) is session_lifetime of the latest provisioned
	// config: a session ends at issued + lifetime when its own expiry is
	// later (a config reload shortened it). 0: no such limit.
	lifetime atomic.Int64
	bg       context.Context // ends with Destruct
	cancel   context.CancelFunc

	// start (app.go) sets signer and startedAt, then running.
	startMu   sync.Mutex
	running   atomic.Bool
	startedAt time.Time
}

// newShared opens the parts of the pooled state a config names (the users
// file, the store) and assembles it.
func newShared(ctx caddy.Context, cfg *config, usersPath string, logger *zap.Logger) (*shared, error) {
	dir, err := openDirectory(usersPath, logger)
	if err != nil {
		return nil, err
	}
	st, err := openStore(cfg.store, storeNamespace(cfg.issuerURL(), cfg.clientID), ctx, logger)
	if err != nil {
		dir.close()
		return nil, err
	}
	return assembleShared(cfg, sharedParts{dir: dir, store: st}, logger), nil
}

// sharedParts are the parts of the pooled state that live outside the
// config: newShared opens them, tests hand in their own.
type sharedParts struct {
	dir   *directory
	store store.Store
	// signer is nil for a state that loads the store's key when it
	// starts (app.go).
	signer *assertionSigner
	// clock is the time of sessions, revocations and K1's tokens; nil:
	// clockNow.
	clock func() time.Time
}

// assembleShared builds the pooled state of cfg from its parts, with a K1
// client of cfg's issuer. It opens nothing, reads neither the store nor K1
// and starts no goroutine: that
// waits for start (app.go), which Caddy runs only for a config it runs,
// not for one it only validates.
func assembleShared(cfg *config, p sharedParts, logger *zap.Logger) *shared {
	// No error is possible for a positive size.
	cache, _ := lru.New[cacheKey, *sessionEntry](sessionCacheSize)
	clock := p.clock
	if clock == nil {
		clock = clockNow
	}
	revs := newRevocationSet()
	revs.now = clock
	// A background context: the pooled state outlives the caddy.Context of
	// the config that created it.
	bg, cancel := context.WithCancel(context.Background())
	return &shared{
		cfg:         cfg,
		codecs:      newCookieCodecs(cfg),
		sessions:    cache,
		k1:          newK1Client(bg, cfg, logger, clock),
		dir:         p.dir,
		store:       p.store,
		revocations: revs,
		revoker:     newRevoker(p.store, revs, logger),
		signer:      p.signer,
		now:         clock,
		used:        newUsedStates(p.store),
		rechecks:    newRecheckQueue(cfg),
		integration: newIntegrationCache(),
		bg:          bg,
		cancel:      cancel,
	}
}

// Destruct stops the background work of the pooled state.
func (s *shared) Destruct() error {
	s.cancel()
	s.dir.close()
	return s.store.Close()
}

// Interface guards
var _ caddy.Destructor = (*shared)(nil)
