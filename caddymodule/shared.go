package caddymodule

import (
	"context"
	"fmt"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// sharedPool holds the state that must outlive a config reload: decoded
// sessions, the K1 client with its discovery and keys, the directory and the
// used states. Keyed by poolKey, which never contains a raw secret.
var sharedPool = caddy.NewUsagePool()

// sessionCacheSize bounds the decoded-session cache. An entry is a few
// hundred bytes (the ID token is not kept), so 100k entries stay well under
// 100 MB.
const sessionCacheSize = 100_000

// shared is the pooled state of one configuration.
type shared struct {
	cfg      *config
	codecs   *cookieCodecs
	sessions *lru.Cache[[32]byte, *sessionEntry]
	k1       *k1Client
	dir      *directory
	store    Store
	signer   *assertionSigner
	used     *usedStates
	logger   *zap.Logger
	cancel   context.CancelFunc
}

func newShared(ctx caddy.Context, cfg *config, usersPath string, logger *zap.Logger) (*shared, error) {
	dir, err := openDirectory(usersPath, logger)
	if err != nil {
		return nil, err
	}
	codecs := newCookieCodecs(cfg)
	cache, err := lru.New[[32]byte, *sessionEntry](sessionCacheSize)
	if err != nil {
		dir.close()
		return nil, err
	}
	store := newCaddyStore(ctx.Storage())
	signer, err := loadAssertionSigner(ctx, store)
	if err != nil {
		dir.close()
		return nil, fmt.Errorf("loading the assertion key: %w", err)
	}
	// A background context: the pooled state outlives the caddy.Context of
	// the config that created it.
	bg, cancel := context.WithCancel(context.Background())
	s := &shared{
		cfg:      cfg,
		codecs:   codecs,
		sessions: cache,
		k1:       newK1Client(bg, cfg, logger),
		dir:      dir,
		store:    store,
		signer:   signer,
		used:     newUsedStates(store),
		logger:   logger,
		cancel:   cancel,
	}
	go s.k1.warm(bg)
	return s, nil
}

// Destruct stops the background work of the pooled state.
func (s *shared) Destruct() error {
	s.cancel()
	s.dir.close()
	return nil
}

// Interface guards
var _ caddy.Destructor = (*shared)(nil)
