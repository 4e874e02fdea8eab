// Package store is the contract between k1sso and the place where its proxy
// instances share state: used login states and logout-token IDs, login
// records, the assertion key, integration switches and revocations.
//
// A store is a Caddy guest module in the namespace [ModuleNamespace]
// (http.handlers.k1sso.stores.<name>) that implements [Backend]; k1sso ships
// `caddy` (Caddy's configured storage, package caddystore) and `redis`
// (package redisstore). A third-party module registered the same way is
// loaded by name: `store <name> [args...]` in the Caddyfile, or
// `"store": {"backend": "<name>", ...}` in JSON.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// ModuleNamespace is the Caddy module namespace of store modules: a store
// named foo has the module ID http.handlers.k1sso.stores.foo.
const ModuleNamespace = "http.handlers.k1sso.stores"

// ErrNotFound is what Store.Get returns for a missing or expired key. It is
// fs.ErrNotExist, so a store built on a file system or on certmagic's
// storage may pass that error through.
var ErrNotFound = fs.ErrNotExist

// Backend is a store module: its configuration, loaded and provisioned by
// Caddy with the handler. It holds no connection itself; OpenStore does,
// once per pooled handler state, and that state survives config reloads
// that keep the same PoolKey.
type Backend interface {
	caddy.Module
	// OpenStore opens the store of one deployment. ctx is the
	// caddy.Context of the config that first needs the store; the store
	// may outlive that config, so it must not keep ctx to cancel its work
	// (Close ends it). It must not read or write yet: k1sso does that when
	// Caddy starts the config, not when it only validates it.
	OpenStore(ctx caddy.Context, opts Options) (Store, error)
	// PoolKey identifies what OpenStore would connect to: two handlers
	// whose backends give the same key (and whose other options agree)
	// share one open store across config reloads. It must never hold a
	// raw secret, such as a password inside a URL: hash it.
	PoolKey() string
}

// Options are what k1sso tells a store when it opens it.
type Options struct {
	// Namespace names one deployment (its issuer and client). Keep its
	// keys apart from every other namespace's: several deployments may
	// share one database.
	Namespace string
	// Logger is the handler's logger; nil means none.
	Logger *zap.Logger
	// Now is the clock expiries are measured by (k1sso's tests move it
	// forward); nil means time.Now.
	Now func() time.Time
	// Expiring are the key folders ("state", "login/sid", ...) whose
	// entries all carry a ttl and that nothing else deletes: a store
	// without expiry of its own deletes their expired entries now and
	// then. Keys of other folders may be kept forever (ttl 0) or are
	// revocations (see Store.Revoke).
	Expiring []string
}

// WithDefaults fills what is unset: a no-op logger and time.Now.
func (o Options) WithDefaults() Options {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Store keeps what every proxy instance must share. Keys are relative
// slash-separated names built by k1sso from fixed folder names and hashes
// ("state/<hash>", "assertion/es256.pem"), never from raw request input;
// a store adds its namespace. It is never called on the hot path of an
// authenticated request: revocations reach each instance's memory through
// Watch. Every method may be called concurrently.
type Store interface {
	// Get returns the value of key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key; a ttl of 0 keeps it forever. A key
	// must not be readable after its ttl (it may be read up to a second
	// later: see WrapExpiry), nor expire before it.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// PutIfAbsent stores value only when key is absent (or expired) and
	// reports whether it did, atomically for every instance: it is what
	// makes a login state usable once.
	PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
	// Extend stores the time until (unix seconds, as a decimal string)
	// under key unless a later one is stored, atomically for every
	// instance, and keeps the key until the time it holds. A time already
	// past stores nothing. StoredTime reads it back.
	Extend(ctx context.Context, key string, until int64) error
	// Revoke stores a revocation until its Expires (see
	// Revocation.Record), for every instance, and pushes it to the
	// instances that watch, where the store can push. Two revocations of
	// the same Name are one entry.
	Revoke(ctx context.Context, rv Revocation) error
	// Revocations lists every stored revocation that has not expired.
	Revocations(ctx context.Context) ([]Revocation, error)
	// Watch delivers the revocations of every instance to sink until ctx
	// ends, and calls sink.Synced each time it knows it has seen all of
	// them. An instance whose sink was not synced for 5 s refuses
	// sessions (503) until it is again, so a store calls Synced at least
	// every second or two while it works.
	Watch(ctx context.Context, sink Sink)
	// Close releases the store's connections and stops its background
	// work.
	Close() error
}

// Sink receives what Store.Watch learns.
type Sink interface {
	// Add records one revocation; adding one twice is harmless.
	Add(rv Revocation)
	// Synced says that every revocation stored before at has been added.
	Synced(at time.Time)
}

// LegacyReader is implemented by a store that can read a key of the layout
// before keys were namespaced per deployment (k1sso's own stores: old
// integration switches are still read).
type LegacyReader interface {
	// GetLegacy returns the value of key outside any namespace, or
	// ErrNotFound.
	GetLegacy(ctx context.Context, key string) ([]byte, error)
}

// Revocation kinds.
const (
	KindID  = "id"  // one proxy session, by session ID
	KindSID = "sid" // every proxy session of one K1 session
	KindSub = "sub" // every proxy session of one K1 user issued up to Before
	// every proxy session of one email issued up to Before (admin API)
	KindEmail = "email"
)

// Revocation ends proxy sessions. It is kept until Expires, after which no
// session it could match is still valid. Its JSON (Record) is what the
// stores hold, so the field names stay.
type Revocation struct {
	// Kind is one of KindID, KindSID, KindSub, KindEmail.
	Kind string `json:"k"`
	// Value is the session ID, sid, sub or email.
	Value string `json:"v"`
	// Before (sub, email): sessions issued at or before it (unix s).
	Before int64 `json:"b,omitempty"`
	// K1 marks a sub revocation of a logout at K1: Before is the logout
	// token's iat, compared with the iat of the session's ID token (both
	// K1's clock), not with when an instance issued the session.
	K1 bool `json:"k1,omitempty"`
	// Expires is when it can be forgotten (unix s).
	Expires int64 `json:"x"`
}

// Name is the revocation's key inside a store's revocation folder. Values
// are hashed, so any sub or sid is a safe file name; sub and email
// revocations keep their time, so two logouts of one user never overwrite
// each other.
func (rv Revocation) Name() string {
	sum := sha256.Sum256([]byte(rv.Value))
	n := rv.Kind + "-" + hex.EncodeToString(sum[:16])
	if rv.Kind == KindSub || rv.Kind == KindEmail {
		n += "-" + strconv.FormatInt(rv.Before, 10)
	}
	if rv.K1 {
		n += "-k1"
	}
	return n
}

// Valid reports whether rv is a revocation k1sso can apply: a known kind,
// a value and an expiry.
func (rv Revocation) Valid() bool {
	return (rv.Kind == KindID || rv.Kind == KindSID || rv.Kind == KindSub || rv.Kind == KindEmail) && rv.Value != "" && rv.Expires > 0
}

// ParseRevocation decodes a revocation stored as Record made it.
func ParseRevocation(b []byte) (Revocation, error) {
	var rv Revocation
	if err := json.Unmarshal(b, &rv); err != nil {
		return rv, err
	}
	if !rv.Valid() {
		return rv, errors.New("not a revocation")
	}
	return rv, nil
}

// Record is how a revocation is stored: its JSON, kept a second past the
// session life it ends. ok is false (nothing to store) when it has already
// expired at now or cannot be encoded (err).
func (rv Revocation) Record(now time.Time) (b []byte, ttl time.Duration, ok bool, err error) {
	ttl = time.Unix(rv.Expires, 0).Sub(now)
	if ttl <= 0 {
		return nil, 0, false, nil
	}
	b, err = json.Marshal(rv)
	if err != nil {
		return nil, 0, false, err
	}
	return b, ttl + time.Second, true, nil
}

// StoredTime reads a time stored by Store.Extend; ok is false when there is
// none, or it is before now.
func StoredTime(ctx context.Context, s Store, key string, now time.Time) (until int64, ok bool, err error) {
	b, err := s.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	until, err = strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("decoding %s: %w", key, err)
	}
	return until, until >= now.Unix(), nil
}
