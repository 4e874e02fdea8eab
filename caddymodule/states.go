package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/k1sso/k1sso/store"
)

// usedStates makes every login state usable once, on every instance: a state
// is claimed in memory first (cheap refusal of a replay here) and then in the
// shared store (refusal of a replay at another instance).
type usedStates struct {
	store store.Store
	mem   *lru.Cache[string, struct{}]
}

func newUsedStates(st store.Store) *usedStates {
	mem, _ := lru.New[string, struct{}](10_000)
	return &usedStates{store: st, mem: mem}
}

// claim reports whether state had not been used before, and marks it used
// for ttl.
func (u *usedStates) claim(ctx context.Context, state string, ttl time.Duration) (bool, error) {
	sum := sha256.Sum256([]byte(state))
	key := hex.EncodeToString(sum[:])
	if ok, _ := u.mem.ContainsOrAdd(key, struct{}{}); ok {
		return false, nil
	}
	return u.store.PutIfAbsent(ctx, "state/"+key, []byte{1}, ttl)
}
