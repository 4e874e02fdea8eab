package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// errNotFound is returned by Store.Get for a missing or expired key.
var errNotFound = fs.ErrNotExist

// Store keeps what every proxy instance must share: used login states and
// logout-token IDs, the assertion key, revocations and integration switches.
// It is never called on the hot path of an authenticated request: the
// revocations reach each instance's memory through Watch.
type Store interface {
	// Get returns the value of key, or errNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key; a ttl of 0 keeps it forever.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// PutIfAbsent stores value only when key is absent (or expired) and
	// reports whether it did.
	PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Extend stores the time until (unix seconds) under key unless a later
	// one is stored, atomically for every instance, and keeps the key until
	// the time it holds. storedTime reads it back.
	Extend(ctx context.Context, key string, until int64) error
	// Revoke stores a revocation until its Expires, for every instance, and
	// pushes it to the instances that watch, where the store can push.
	Revoke(ctx context.Context, rv revocation) error
	// Revocations lists every stored revocation that has not expired.
	Revocations(ctx context.Context) ([]revocation, error)
	// Watch delivers the revocations of every instance to sink until ctx
	// ends, and tells sink each time it is known to have seen all of them.
	Watch(ctx context.Context, sink revocationSink)
	// Close releases the store's connections.
	Close() error
}

// revocationSink receives what Store.Watch learns.
type revocationSink interface {
	// add records one revocation.
	add(rv revocation)
	// synced says that every revocation stored before at has been added.
	synced(at time.Time)
}

// Revocation kinds.
const (
	revokeID  = "id"  // one proxy session, by session ID
	revokeSID = "sid" // every proxy session of one K1 session
	revokeSub = "sub" // every proxy session of one K1 user issued up to Before
	// every proxy session of one email issued up to Before (admin API)
	revokeEmail = "email"
)

// revocation ends proxy sessions. It is kept until Expires, after which no
// session it could match is still valid.
type revocation struct {
	Kind   string `json:"k"`
	Value  string `json:"v"`
	Before int64  `json:"b,omitempty"` // sub, email: sessions issued at or before (unix s)
	// K1 marks a sub revocation of a logout at K1: Before is the logout
	// token's iat, compared with the iat of the session's ID token (both
	// K1's clock), not with when an instance issued the session.
	K1      bool  `json:"k1,omitempty"`
	Expires int64 `json:"x"` // unix s
}

// name is the revocation's key inside the store's revoked/ folder. Values
// are hashed, so any sub or sid is a safe file name; sub revocations keep
// their time, so two logouts of one user never overwrite each other.
func (rv revocation) name() string {
	sum := sha256.Sum256([]byte(rv.Value))
	n := rv.Kind + "-" + hex.EncodeToString(sum[:16])
	if rv.Kind == revokeSub || rv.Kind == revokeEmail {
		n += "-" + strconv.FormatInt(rv.Before, 10)
	}
	if rv.K1 {
		n += "-k1"
	}
	return n
}

func (rv revocation) valid() bool {
	return (rv.Kind == revokeID || rv.Kind == revokeSID || rv.Kind == revokeSub || rv.Kind == revokeEmail) && rv.Value != "" && rv.Expires > 0
}

func parseRevocation(b []byte) (revocation, error) {
	var rv revocation
	if err := json.Unmarshal(b, &rv); err != nil {
		return rv, err
	}
	if !rv.valid() {
		return rv, errors.New("not a revocation")
	}
	return rv, nil
}

// storeConfig is the provisioned form of the store option.
type storeConfig struct {
	kind     string // "caddy" or "redis"
	redisURL string // expanded; holds the password, never logged
	id       string // for the pool key: kind and a hash of the URL
}

// buildStoreConfig checks the store options; expand expands placeholders.
func (h *Handler) buildStoreConfig(expand func(string) string) (storeConfig, error) {
	switch h.Store {
	case "", "caddy":
		if h.RedisURL != "" {
			return storeConfig{}, errors.New("store: redis_url is set but the store is not redis")
		}
		return storeConfig{kind: "caddy", id: "caddy"}, nil
	case "redis":
		u := expand(h.RedisURL)
		if u == "" {
			return storeConfig{}, errors.New("store: redis needs a URL, like redis://127.0.0.1:6379/0" + emptyHint(h.RedisURL))
		}
		if _, err := parseRedisURL(u); err != nil {
			return storeConfig{}, err
		}
		sum := sha256.Sum256([]byte("k1sso redis\x00" + u))
		return storeConfig{kind: "redis", redisURL: u, id: "redis:" + hex.EncodeToString(sum[:8])}, nil
	}
	return storeConfig{}, fmt.Errorf("store: %q is not caddy or redis", h.Store)
}

// storeNamespace names one deployment (issuer and client) in a store that
// several share: every instance of the deployment computes the same, two
// sites with another issuer or client never see each other's keys.
func storeNamespace(issuer, clientID string) string {
	sum := sha256.Sum256([]byte("k1sso store\x00" + issuer + "\x00" + clientID))
	return hex.EncodeToString(sum[:8])
}

// openStore creates the configured store for the deployment ns. storage
// is Caddy's.
func openStore(sc storeConfig, ns string, storage certmagic.Storage, logger *zap.Logger) (Store, error) {
	if sc.kind == "redis" {
		return newRedisStore(sc.redisURL, ns, logger)
	}
	return newCaddyStore(storage, ns, logger), nil
}

// storedTime reads a time stored by Store.Extend; ok is false when there is
// none (or it is over).
func storedTime(ctx context.Context, s Store, key string) (until int64, ok bool, err error) {
	b, err := s.Get(ctx, key)
	if errors.Is(err, errNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	until, err = strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return until, until >= clockNow().Unix(), nil
}

// legacyReader is a store that can read a key of the layout before keys
// were namespaced per deployment.
type legacyReader interface {
	getLegacy(ctx context.Context, key string) ([]byte, error)
}

// caddyStorePoll is how often an instance on the caddy store reads the
// revoked/ folder for revocations made by other instances sharing the
// storage. A revocation made at one instance holds at the others within
// this interval plus the time of one read (about one second in all).
const caddyStorePoll = time.Second

// caddyStoreSweep is how often the caddy store deletes expired entries.
var caddyStoreSweep = newTunable(time.Minute)

// caddyStore keeps entries in Caddy's configured storage (the file system by
// default), under k1sso/<namespace>/. Each value is prefixed with its
// expiry. Revocations are files under revoked/, found by polling; expired
// entries of the folders in sweptFolders are deleted every caddyStoreSweep.
type caddyStore struct {
	s      certmagic.Storage
	base   string // k1sso/<namespace>
	logger *zap.Logger
	// stripes serialise this instance's Extends of one key before they
	// take the storage lock: Caddy's file lock polls once a second when
	// held, so concurrent logins of one user here would wait for it.
	stripes [64]sync.Mutex
}

func newCaddyStore(s certmagic.Storage, ns string, logger *zap.Logger) *caddyStore {
	if logger == nil {
		logger = zap.NewNop()
	}
	return &caddyStore{s: s, base: path.Join("k1sso", ns), logger: logger}
}

// storageKey is where key lives in Caddy's storage. Keys are built by
// k1sso from fixed names and hashes (tenants that are not plain names are
// hashed, see integrationKey), never from raw request input.
func (c *caddyStore) storageKey(key string) string { return path.Join(c.base, key) }

const revokedFolder = "revoked"

// sweptFolders hold the entries with an expiry that nothing else deletes:
// used login states and logout-token IDs, and the login records.
var sweptFolders = []string{"state", loginRecordFolder + "/" + revokeSID, loginRecordFolder + "/" + revokeSub,
	loginRecordFolder + "/" + revokeEmail}

// sweepMax bounds the entries one sweep of a folder reads; a folder with
// more is finished by the next sweeps.
const sweepMax = 100_000

func (c *caddyStore) getLegacy(ctx context.Context, key string) ([]byte, error) {
	return c.get(ctx, path.Join("k1sso", key))
}

func (c *caddyStore) Get(ctx context.Context, key string) ([]byte, error) {
	return c.get(ctx, c.storageKey(key))
}

func (c *caddyStore) get(ctx context.Context, skey string) ([]byte, error) {
	b, err := c.s.Load(ctx, skey)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotFound
		}
		return nil, err
	}
	v, ok := unwrapExpiry(b, clockNow())
	if !ok {
		return nil, errNotFound
	}
	return v, nil
}

func (c *caddyStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.s.Store(ctx, c.storageKey(key), wrapExpiry(value, ttl))
}

func (c *caddyStore) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	lock := c.storageKey(key)
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

func (c *caddyStore) Extend(ctx context.Context, key string, until int64) error {
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
	if old, ok, err := storedTime(ctx, c, key); err == nil && ok && old >= until {
		return nil
	}
	ttl := time.Unix(until, 0).Sub(clockNow()) + time.Second
	if ttl <= time.Second {
		return nil
	}
	return c.Put(ctx, key, []byte(strconv.FormatInt(until, 10)), ttl)
}

// sweep deletes the expired entries of sweptFolders, reading at most
// sweepMax entries of each.
func (c *caddyStore) sweep(ctx context.Context) error {
	now := clockNow()
	for _, f := range sweptFolders {
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
			if _, ok := unwrapExpiry(b, now); !ok && len(b) >= 8 {
				_ = c.s.Delete(ctx, k)
			}
		}
	}
	return nil
}

func (c *caddyStore) Revoke(ctx context.Context, rv revocation) error {
	b, ttl, ok, err := rv.record()
	if !ok {
		return err
	}
	return c.Put(ctx, path.Join(revokedFolder, rv.name()), b, ttl)
}

// record is how a revocation is stored: its JSON, kept a second past the
// session life it ends. ok is false (nothing to store) when it has already
// expired or cannot be encoded (err).
func (rv revocation) record() (b []byte, ttl time.Duration, ok bool, err error) {
	ttl = time.Unix(rv.Expires, 0).Sub(clockNow())
	if ttl <= 0 {
		return nil, 0, false, nil
	}
	b, err = json.Marshal(rv)
	if err != nil {
		return nil, 0, false, err
	}
	return b, ttl + time.Second, true, nil
}

func (c *caddyStore) Revocations(ctx context.Context) ([]revocation, error) {
	var out []revocation
	err := c.poll(ctx, map[string]int64{}, func(rv revocation) { out = append(out, rv) })
	return out, err
}

// poll reads the revocations not in known (storage key → expiry) and
// removes expired files. A file that cannot be read or parsed yet (being
// written) is tried again at the next poll.
func (c *caddyStore) poll(ctx context.Context, known map[string]int64, add func(revocation)) error {
	keys, err := c.s.List(ctx, c.storageKey(revokedFolder), false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	now := clockNow()
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
		v, ok := unwrapExpiry(b, now)
		if !ok {
			if len(b) >= 8 {
				_ = c.s.Delete(ctx, k) // expired
			}
			continue
		}
		rv, err := parseRevocation(v)
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

// Watch polls the revoked/ folder every caddyStorePoll, and sweeps expired
// entries every caddyStoreSweep.
func (c *caddyStore) Watch(ctx context.Context, sink revocationSink) {
	known := map[string]int64{}
	t := time.NewTicker(caddyStorePoll)
	defer t.Stop()
	failing := false
	lastSweep := time.Now()
	for {
		if time.Since(lastSweep) >= caddyStoreSweep.get() {
			lastSweep = time.Now()
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			if err := c.sweep(sctx); err != nil && ctx.Err() == nil {
				c.logger.Warn("deleting expired entries from Caddy's storage failed; will retry", zap.Error(err))
			}
			cancel()
		}
		start := time.Now()
		if err := c.poll(ctx, known, sink.add); err != nil {
			if !failing {
				c.logger.Warn("reading revocations from Caddy's storage failed; will retry", zap.Error(err))
			}
			failing = true
		} else {
			if failing {
				c.logger.Info("reading revocations from Caddy's storage works again")
			}
			failing = false
			sink.synced(start)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Close does nothing: Caddy owns its storage.
func (c *caddyStore) Close() error { return nil }

// wrapExpiry prefixes a value with its expiry in unix seconds (0: never),
// rounded up: an entry never expires before its ttl (a recheck claim that
// lapsed early would let a second instance ask K1 in the same interval).
func wrapExpiry(v []byte, ttl time.Duration) []byte {
	b := make([]byte, 8+len(v))
	if ttl > 0 {
		exp := clockNow().Add(ttl)
		if t := exp.Truncate(time.Second); t.Before(exp) {
			exp = t.Add(time.Second)
		}
		binary.BigEndian.PutUint64(b, uint64(exp.Unix()))
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
