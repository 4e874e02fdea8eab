package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
	_ "github.com/k1sso/k1sso/store/redisstore" // registers store redis
)

// storeTimeout bounds one store call of a login, logout or revocation;
// the store is never on the hot path, but those wait for it.
const storeTimeout = 2 * time.Second

// sweptFolders hold the entries with an expiry that nothing else deletes:
// used login states and logout-token IDs, and the login records (more are
// added by the files that store them). Stores without expiry of their own
// sweep them (store.Options.Expiring).
var sweptFolders = []string{"state", loginRecordFolder + "/" + store.KindSID, loginRecordFolder + "/" + store.KindSub,
	loginRecordFolder + "/" + store.KindEmail}

// storeConfig is the loaded store module.
type storeConfig struct {
	backend store.Backend
	kind    string // the module's name: caddy, redis, or a third party's
	// id is for the pool key: the module ID, its PoolKey and a hash of
	// its JSON, so two configurations of a module share pooled state only
	// when they are the same even if the module's PoolKey says less.
	id string
}

// loadStore loads the store module of the handler (the caddy store when
// none is configured). Its errors name the store option.
func (h *Handler) loadStore(ctx caddy.Context) (storeConfig, error) {
	var b store.Backend = new(caddystore.Backend)
	sum := sha256.Sum256(h.StoreRaw) // LoadModule clears StoreRaw
	if len(h.StoreRaw) > 0 {
		mod, err := ctx.LoadModule(h, "StoreRaw")
		if err != nil {
			return storeConfig{}, fmt.Errorf("store: %v", err)
		}
		var ok bool
		if b, ok = mod.(store.Backend); !ok {
			return storeConfig{}, fmt.Errorf("store: module %T is not a k1sso store (store.Backend)", mod)
		}
	}
	id := b.CaddyModule().ID
	return storeConfig{backend: b, kind: id.Name(), id: string(id) + "\x00" + b.PoolKey() + "\x00" + hex.EncodeToString(sum[:8])}, nil
}

// storeNamespace names one deployment (issuer and client) in a store that
// several share: every instance of the deployment computes the same, two
// sites with another issuer or client never see each other's keys.
func storeNamespace(issuer, clientID string) string {
	sum := sha256.Sum256([]byte("k1sso store\x00" + issuer + "\x00" + clientID))
	return hex.EncodeToString(sum[:8])
}

// openStore opens the configured store for the deployment ns, on k1sso's
// clock.
func openStore(sc storeConfig, ns string, ctx caddy.Context, logger *zap.Logger) (store.Store, error) {
	if sc.backend == nil {
		return nil, errors.New("store: not loaded")
	}
	return sc.backend.OpenStore(ctx, store.Options{Namespace: ns, Logger: logger, Now: clockNow, Expiring: sweptFolders})
}
