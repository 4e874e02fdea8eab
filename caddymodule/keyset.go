package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// jwksMinRefetch is the shortest time between two fetches of K1's JWKS. An
// ID token with an unknown kid makes the key set refetch (K1 rotated its
// key), but a flood of tokens with made-up kids must not turn the proxy into
// an amplifier against K1. Tests shorten it.
var jwksMinRefetch = newTunable(10 * time.Second)

// tunable is a duration that tests change while goroutines of earlier
// tests (pooled state being torn down) may still read it.
type tunable struct{ v atomic.Int64 }

func newTunable(d time.Duration) *tunable {
	t := &tunable{}
	t.v.Store(int64(d))
	return t
}

func (t *tunable) get() time.Duration  { return time.Duration(t.v.Load()) }
func (t *tunable) set(d time.Duration) { t.v.Store(int64(d)) }

// maxJWKSBytes bounds the JWKS document read from K1.
const maxJWKSBytes = 1 << 20

// errJWKSUnavailable means K1's keys could not be fetched (yet).
var errJWKSUnavailable = errors.New("fetching KaseyaOne's keys failed")

// keySet is an oidc.KeySet over K1's JWKS. Unlike go-oidc's RemoteKeySet it
// refetches on an unknown kid at most once per jwksMinRefetch, and it
// settles a token without kid itself: with one key that key is used, with
// several the token is refused rather than tried against each key.
type keySet struct {
	url    string
	client *http.Client
	algs   []jose.SignatureAlgorithm // from discovery; never none, never HMAC

	// mu is held during a fetch, so concurrent logins that miss a key wait
	// for one fetch instead of each starting their own.
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	loaded  bool      // keys were fetched successfully at least once
	fetched time.Time // last fetch attempt, successful or not
	fetches int       // fetch attempts, for logs and tests
}

func newKeySet(url string, client *http.Client, algs []string) *keySet {
	ks := &keySet{url: url, client: client}
	for _, a := range algs {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	return ks
}

// VerifySignature implements oidc.KeySet: it checks the JWS signature with
// the key its kid names and returns the payload.
func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	// go-oidc has checked the algorithm already; parsing with the same list
	// again keeps this key set safe on its own.
	jws, err := jose.ParseSigned(raw, ks.algs)
	if err != nil {
		return nil, fmt.Errorf("parsing the jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("jwt must have exactly one signature")
	}
	key, err := ks.key(ctx, jws.Signatures[0].Header.KeyID)
	if err != nil {
		return nil, err
	}
	return jws.Verify(key)
}

// ready makes sure the keys were fetched once, so that a login can tell
// "K1 unreachable" (503) from "bad token" (400).
func (ks *keySet) ready(ctx context.Context) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.loaded {
		return nil
	}
	// Before the first success a retry is allowed every second: a K1 that
	// comes back is used at once, and a flood still costs K1 one request
	// a second at most.
	if !ks.fetched.IsZero() && time.Since(ks.fetched) < min(jwksMinRefetch.get(), time.Second) {
		return errJWKSUnavailable
	}
	return ks.fetchLocked(ctx)
}

// key finds the verification key of a kid, refetching the JWKS when the kid
// is unknown and the last fetch is old enough.
func (ks *keySet) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if !ks.loaded || (kid != "" && ks.findLocked(kid) == nil) {
		if ks.fetched.IsZero() || time.Since(ks.fetched) >= jwksMinRefetch.get() {
			_ = ks.fetchLocked(ctx) // on failure the old keys stay in use
		}
	}
	if kid == "" {
		// OIDC Core §10.1: kid may be left out only when the set has one key.
		sig := ks.sigKeysLocked()
		if len(sig) != 1 {
			return nil, fmt.Errorf("jwt has no kid and the key set has %d signing keys", len(sig))
		}
		return sig[0], nil
	}
	if k := ks.findLocked(kid); k != nil {
		return k, nil
	}
	return nil, errors.New("jwt signed with an unknown key")
}

func (ks *keySet) findLocked(kid string) *jose.JSONWebKey {
	for i := range ks.keys {
		if k := &ks.keys[i]; k.KeyID == kid && k.Use != "enc" {
			return k
		}
	}
	return nil
}

func (ks *keySet) sigKeysLocked() []*jose.JSONWebKey {
	var out []*jose.JSONWebKey
	for i := range ks.keys {
		if k := &ks.keys[i]; k.Use != "enc" && k.IsPublic() {
			out = append(out, k)
		}
	}
	return out
}

// fetchLocked downloads the JWKS. Only public keys are kept: a JWKS that
// publishes a symmetric key cannot make k1sso accept HMAC tokens.
func (ks *keySet) fetchLocked(ctx context.Context) error {
	ks.fetched = time.Now()
	ks.fetches++
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return err
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: status %d", errJWKSUnavailable, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	keys := set.Keys[:0]
	for _, k := range set.Keys {
		if k.IsPublic() && k.Valid() {
			keys = append(keys, k)
		}
	}
	ks.keys, ks.loaded = keys, true
	return nil
}
