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
	cfg      *config
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
	// lifetime (seconds) is session_lifetime of the latest provisioned
	// config: a session ends at issued + lifetime when its own expiry is
	// later (a config reload shortened it). 0: no such limit.
	lifetime atomic.Int64
	logger   *zap.Logger
	bg       context.Context // ends with Destruct
	cancel   context.CancelFunc

	// start (app.go) sets signer and startedAt, then running.
	startMu   sync.Mutex
	running   atomic.Bool
	startedAt time.Time
}

func newShared(ctx caddy.Context, cfg *config, usersPath string, logger *zap.Logger) (*shared, error) {
	dir, err := openDirectory(usersPath, logger)
	if err != nil {
		return nil, err
	}
	codecs := newCookieCodecs(cfg)
	cache, err := lru.New[cacheKey, *sessionEntry](sessionCacheSize)
	if err != nil {
		dir.close()
		return nil, err
	}
	st, err := openStore(cfg.store, storeNamespace(cfg.issuerURL(), cfg.clientID), ctx, logger)
	if err != nil {
		dir.close()
		return nil, err
	}
	// Nothing here reads the store or reaches K1, and no goroutine starts:
	// that waits for start (app.go), which Caddy runs only for a config it
	// runs, not for one it only validates.
	revs := newRevocationSet()
	// A background context: the pooled state outlives the caddy.Context of
	// the config that created it.
	bg, cancel := context.WithCancel(context.Background())
	s := &shared{
		cfg:         cfg,
		codecs:      codecs,
		sessions:    cache,
		k1:          newK1Client(bg, cfg, logger),
		dir:         dir,
		store:       st,
		revocations: revs,
		revoker:     newRevoker(st, revs, logger),
		used:        newUsedStates(st),
		rechecks:    newRecheckQueue(cfg),
		logger:      logger,
		bg:          bg,
		cancel:      cancel,
	}
	return s, nil
}

// Destruct stops the background work of the pooled state.
func (s *shared) Destruct() error {
	s.cancel()
	s.dir.close()
	return s.store.Close()
}

// Interface guards
var _ caddy.Destructor = (*shared)(nil)
