package caddymodule

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"path"
	"time"

	"github.com/caddyserver/certmagic"
)

// errNotFound is returned by Store.Get for a missing or expired key.
var errNotFound = fs.ErrNotExist

// Store keeps what every proxy instance must share: used login states,
// the assertion key, revocations and integration switches. It is never
// called on the hot path of an authenticated request.
type Store interface {
	// Get returns the value of key, or errNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key; a ttl of 0 keeps it forever.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// PutIfAbsent stores value only when key is absent (or expired) and
	// reports whether it did.
	PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
}

// caddyStore keeps entries in Caddy's configured storage (the file system by
// default), under k1sso/. Each value is prefixed with its expiry.
type caddyStore struct {
	s certmagic.Storage
}

func newCaddyStore(s certmagic.Storage) *caddyStore { return &caddyStore{s: s} }

func storageKey(key string) string { return path.Join("k1sso", key) }

func (c *caddyStore) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.s.Load(ctx, storageKey(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotFound
		}
		return nil, err
	}
	v, ok := unwrapExpiry(b, time.Now())
	if !ok {
		return nil, errNotFound
	}
	return v, nil
}

func (c *caddyStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.s.Store(ctx, storageKey(key), wrapExpiry(value, ttl))
}

func (c *caddyStore) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	lock := storageKey(key)
	if err := c.s.Lock(ctx, lock); err != nil {
		return false, err
	}
	defer func() { _ = c.s.Unlock(context.Background(), lock) }()
	if _, err := c.Get(ctx, key); err == nil {
		return false, nil
	} else if !errors.Is(err, errNotFound) {
		return false, err
	}
	return true, c.Put(ctx, key, value, ttl)
}

// wrapExpiry prefixes a value with its expiry in unix seconds (0: never).
func wrapExpiry(v []byte, ttl time.Duration) []byte {
	b := make([]byte, 8+len(v))
	if ttl > 0 {
		binary.BigEndian.PutUint64(b, uint64(time.Now().Add(ttl).Unix()))
	}
	copy(b[8:], v)
	return b
}

func unwrapExpiry(b []byte, now time.Time) ([]byte, bool) {
	if len(b) < 8 {
		return nil, false
	}
	exp := int64(binary.BigEndian.Uint64(b))
	if exp != 0 && now.Unix() >= exp {
		return nil, false
	}
	return b[8:], true
}

// Interface guards
var _ Store = (*caddyStore)(nil)
