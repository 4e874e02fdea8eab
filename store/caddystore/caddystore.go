// Package caddystore is k1sso's default store: Caddy's configured storage
// (the file system unless the config names another storage module), as the
// guest module http.handlers.k1sso.stores.caddy.
package caddystore

import (
	"context"
	"errors"
	"hash/fnv"
	"io/fs"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/store"
)

func init() {
	caddy.RegisterModule(Backend{})
}

// Backend keeps the store in Caddy's configured storage; instances that
// share the storage (one folder, or a shared storage module) share the
// store. Caddyfile: `store caddy`. JSON: `{"backend": "caddy"}`.
type Backend struct{}

// CaddyModule returns the Caddy module information.
func (Backend) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  store.ModuleNamespace + ".caddy",
		New: func() caddy.Module { return new(Backend) },
	}
}

// UnmarshalCaddyfile reads `caddy`, which takes no argument.
func (*Backend) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	if d.NextArg() || d.NextBlock(d.Nesting()) {
		return d.Errf("k1sso: store caddy takes no argument")
	}
	return nil
}

// PoolKey is the same for every configuration: Caddy has one storage.
func (*Backend) PoolKey() string { return "caddy" }

// String names the store in messages.
func (*Backend) String() string { return "Caddy's storage" }

// OpenStore opens the store on ctx's storage.
func (*Backend) OpenStore(ctx caddy.Context, opts store.Options) (store.Store, error) {
	s := ctx.Storage()
	if s == nil {
		return nil, errors.New("store caddy: the config has no storage")
	}
	return New(s, opts), nil
}

// PollInterval is how often an instance reads the revoked/ folder for
// revocations made by other instances sharing the storage. A revocation
// made at one instance holds at the others within this interval plus the
// time of one read (about one second in all).
const PollInterval = time.Second

// SweepInterval is how often the store deletes the expired entries of the
// Expiring folders (see store.Options), measured by the store's clock.
const SweepInterval = time.Minute

// sweepMax bounds the entries one sweep of a folder reads; a folder with
// more is finished by the next sweeps.
const sweepMax = 100_000

// revokedFolder holds one file per revocation, named by Revocation.Name.
const revokedFolder = "revoked"

// Store keeps entries in a certmagic.Storage under k1sso/<namespace>/. Each
// value is prefixed with its expiry (store.WrapExpiry). Revocations are
// files under revoked/, found by polling; expired entries of the Expiring
// folders are deleted every SweepInterval.
type Store struct {
	s      certmagic.Storage
	base   string // k1sso/<namespace>
	now    func() time.Time
	swept  []string
	logger *zap.Logger
	// stripes serialise this instance's Extends of one key before they
	// take the storage lock: Caddy's file lock polls once a second when
	// held, so concurrent logins of one user here would wait for it.
	stripes [64]sync.Mutex
}

// New returns the store of opts.Namespace in s.
func New(s certmagic.Storage, opts store.Options) *Store {
	opts = opts.WithDefaults()
	return &Store{s: s, base: path.Join("k1sso", opts.Namespace), now: opts.Now,
		swept: opts.Expiring, logger: opts.Logger}
}

// storageKey is where key lives in the storage.
func (c *Store) storageKey(key string) string { return path.Join(c.base, key) }

// GetLegacy reads key of the layout before namespaces (k1sso/<key>).
func (c *Store) GetLegacy(ctx context.Context, key string) ([]byte, error) {
	return c.get(ctx, path.Join("k1sso", key))
}

// Get returns the value of key, or store.ErrNotFound.
func (c *Store) Get(ctx context.Context, key string) ([]byte, error) {
	return c.get(ctx, c.storageKey(key))
}

func (c *Store) get(ctx context.Context, skey string) ([]byte, error) {
	b, err := c.s.Load(ctx, skey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	v, ok := store.UnwrapExpiry(b, c.now())
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

// Put stores value under key until ttl (0: forever).
func (c *Store) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.s.Store(ctx, c.storageKey(key), store.WrapExpiry(value, ttl, c.now()))
}

// Delete removes key; k1sso check uses it for its probe.
func (c *Store) Delete(ctx context.Context, key string) error {
	return c.s.Delete(ctx, c.storageKey(key))
}

// PutIfAbsent stores value under the storage's lock of key.
func (c *Store) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	lock := c.storageKey(key)
	if err := c.s.Lock(ctx, lock); err != nil {
		return false, err
	}
	defer func() { _ = c.s.Unlock(context.Background(), lock) }()
	if _, err := c.Get(ctx, key); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	return true, c.Put(ctx, key, value, ttl)
}

// Extend keeps the later time under the storage's lock of key.
func (c *Store) Extend(ctx context.Context, key string, until int64) error {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	mu := &c.stripes[h.Sum32()%uint32(len(c.stripes))]
	mu.Lock()
	defer mu.Unlock()
	lock := c.storageKey(key)
	if err := c.s.Lock(ctx, lock); err != nil {
		return err
	}
	defer func() { _ = c.s.Unlock(context.Background(), lock) }()
	now := c.now()
	if old, ok, err := store.StoredTime(ctx, c, key, now); err == nil && ok && old >= until {
		return nil
	}
	ttl := time.Unix(until, 0).Sub(now) + time.Second
	if ttl <= time.Second {
		return nil
	}
	return c.Put(ctx, key, []byte(strconv.FormatInt(until, 10)), ttl)
}

// sweep deletes the expired entries of the Expiring folders, reading at
// most sweepMax entries of each.
func (c *Store) sweep(ctx context.Context) error {
	now := c.now()
	for _, f := range c.swept {
		keys, err := c.s.List(ctx, c.storageKey(f), false)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		if len(keys) > sweepMax {
			keys = keys[:sweepMax]
		}
		for _, k := range keys {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b, err := c.s.Load(ctx, k)
			if err != nil {
				continue // a folder, or deleted meanwhile
			}
			// Shorter than its expiry: being written, not expired.
			if _, ok := store.UnwrapExpiry(b, now); !ok && len(b) >= store.ExpiryLen {
				_ = c.s.Delete(ctx, k)
			}
		}
	}
	return nil
}

// Revoke writes the revocation's file; the other instances find it at
// their next poll.
func (c *Store) Revoke(ctx context.Context, rv store.Revocation) error {
	b, ttl, ok, err := rv.Record(c.now())
	if !ok {
		return err
	}
	return c.Put(ctx, path.Join(revokedFolder, rv.Name()), b, ttl)
}

// Revocations reads every file of the revoked/ folder.
func (c *Store) Revocations(ctx context.Context) ([]store.Revocation, error) {
	var out []store.Revocation
	err := c.poll(ctx, map[string]int64{}, func(rv store.Revocation) { out = append(out, rv) })
	return out, err
}

// poll reads the revocations not in known (storage key → expiry) and
// removes expired files. A file that cannot be read or parsed yet (being
// written) is tried again at the next poll.
func (c *Store) poll(ctx context.Context, known map[string]int64, add func(store.Revocation)) error {
	keys, err := c.s.List(ctx, c.storageKey(revokedFolder), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	now := c.now()
	listed := make(map[string]bool, len(keys))
	for _, k := range keys {
		listed[k] = true
		if exp, ok := known[k]; ok {
			if now.Unix() > exp {
				_ = c.s.Delete(ctx, k)
				delete(known, k)
			}
			continue
		}
		b, err := c.s.Load(ctx, k)
		if err != nil {
			continue
		}
		v, ok := store.UnwrapExpiry(b, now)
		if !ok {
			if len(b) >= store.ExpiryLen {
				_ = c.s.Delete(ctx, k) // expired
			}
			continue
		}
		rv, err := store.ParseRevocation(v)
		if err != nil {
			continue
		}
		known[k] = rv.Expires
		add(rv)
	}
	for k := range known {
		if !listed[k] {
			delete(known, k)
		}
	}
	return nil
}

// Watch polls the revoked/ folder every PollInterval, and sweeps expired
// entries every SweepInterval of the store's clock (so a test that moves
// the clock hours ahead gets a sweep at the next poll).
func (c *Store) Watch(ctx context.Context, sink store.Sink) {
	known := map[string]int64{}
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	failing := false
	lastSweep := c.now()
	for {
		if c.now().Sub(lastSweep) >= SweepInterval {
			lastSweep = c.now()
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := c.sweep(sctx); err != nil && ctx.Err() == nil {
				c.logger.Warn("deleting expired entries from Caddy's storage failed; will retry", zap.Error(err))
			}
			cancel()
		}
		start := time.Now()
		if err := c.poll(ctx, known, sink.Add); err != nil {
			if !failing {
				c.logger.Warn("reading revocations from Caddy's storage failed; will retry", zap.Error(err))
			}
			failing = true
		} else {
			if failing {
				c.logger.Info("reading revocations from Caddy's storage works again")
			}
			failing = false
			sink.Synced(start)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close does nothing: Caddy owns its storage.
func (c *Store) Close() error { return nil }

// Interface guards
var (
	_ store.Store           = (*Store)(nil)
	_ store.LegacyReader    = (*Store)(nil)
	_ store.Backend         = (*Backend)(nil)
	_ caddyfile.Unmarshaler = (*Backend)(nil)
)
