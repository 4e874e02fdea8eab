package oidcrp

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DefaultMinRefetch is the default of Config.MinRefetch.
const DefaultMinRefetch = 10 * time.Second

// maxJWKSBytes bounds the JWKS document read from the provider.
const maxJWKSBytes = 1 << 20

// errJWKSUnavailable means the provider's keys could not be fetched (yet).
var errJWKSUnavailable = errors.New("fetching the provider's keys failed")

// errUnknownKid is a token whose kid is not in the JWKS.
var errUnknownKid = errors.New("jwt signed with an unknown key")

// keySet holds the provider's JWKS. Its two views, idTokens and
// logoutTokens, are the oidc.KeySet of each kind of token. They share the
// keys but not their refetch budget: an ID token comes from the token
// endpoint over TLS in exchange for a code, a logout token is anything
// anyone POSTs, and a flood of the latter must not keep a rotation from
// being picked up by the former. Unlike go-oidc's RemoteKeySet, a refetch
// that does not help blocks further refetches of that view for
// minRefetch; a token without kid is settled here too: with one key that
// key is used, with several the token is refused rather than tried
// against each key.
//
// Its times are the wall clock, not Config.Now: they ration requests to
// the provider, whatever time the tokens are judged at.
type keySet struct {
	url        string
	client     *http.Client
	algs       []jose.SignatureAlgorithm // from discovery; never none, never HMAC
	minRefetch time.Duration

	idTokens     *keyView
	logoutTokens *keyView

	// mu is held during a fetch, so concurrent tokens that miss a key wait
	// for one fetch instead of each starting their own.
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	loaded  bool      // keys were fetched successfully at least once
	fetched time.Time // start of the last fetch attempt, successful or not
	digest  [32]byte  // of the last JWKS fetched, to tell a changed set
}

// keyView is the oidc.KeySet of one kind of token, with its own refetch
// budget.
type keyView struct {
	ks      *keySet
	blocked time.Time // no refetch for this view before then; under ks.mu
}

func newKeySet(url string, client *http.Client, algs []string, minRefetch time.Duration) *keySet {
	ks := &keySet{url: url, client: client, minRefetch: minRefetch}
	for _, a := range algs {
		ks.algs = append(ks.algs, jose.SignatureAlgorithm(a))
	}
	ks.idTokens, ks.logoutTokens = &keyView{ks: ks}, &keyView{ks: ks}
	return ks
}

// VerifySignature implements oidc.KeySet: it checks the JWS signature with
// the key its kid names and returns the payload. The JOSE header can name
// no key of its own: jwk, jku, x5u and x5c are never used, only the kid
// looked up in the provider's JWKS.
func (v *keyView) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	arrived := time.Now()
	// go-oidc has checked the algorithm already; parsing with the same list
	// again keeps this key set safe on its own. go-jose refuses a crit
	// header that names an extension it does not implement.
	jws, err := jose.ParseSigned(raw, v.ks.algs)
	if err != nil {
		return nil, fmt.Errorf("parsing the jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("jwt must have exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	payload, err := v.ks.verify(jws, kid)
	if err == nil || (kid != "" && !errors.Is(err, errUnknownKid)) {
		return payload, err // a known key that does not fit: refetching cannot help
	}
	if !v.refetch(ctx, kid, arrived) {
		return nil, err
	}
	return v.ks.verify(jws, kid)
}

// verify checks the signature with the current keys, fetching none.
func (ks *keySet) verify(jws *jose.JSONWebSignature, kid string) ([]byte, error) {
	ks.mu.Lock()
	var key *jose.JSONWebKey
	if kid == "" {
		// OIDC Core §10.1: kid may be left out only when the set has one key.
		sig := ks.sigKeysLocked()
		if len(sig) != 1 {
			ks.mu.Unlock()
			return nil, fmt.Errorf("jwt has no kid and the key set has %d signing keys", len(sig))
		}
		key = sig[0]
	} else if key = ks.findLocked(kid); key == nil {
		ks.mu.Unlock()
		return nil, errUnknownKid
	}
	ks.mu.Unlock()
	return jws.Verify(key)
}

// refetch fetches the JWKS again for a token that arrived at arrived and
// whose key (kid, or the only key when kid is "") did not verify it, if no
// fetch started since the token arrived (then that one is used) and this
// view's budget allows. It reports whether the keys may have changed.
func (v *keyView) refetch(ctx context.Context, kid string, arrived time.Time) bool {
	ks := v.ks
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.fetched.After(arrived) {
		return true // fetched while this token waited for mu
	}
	if time.Now().Before(v.blocked) {
		return false
	}
	before := ks.digest
	err := ks.fetchLocked(ctx)
	// The refetch helped when the kid is now known (or, without kid, the
	// set changed). One that did not was caused by a token the provider
	// did not sign with a published key: such tokens wait for the budget.
	helped := err == nil && ((kid != "" && ks.findLocked(kid) != nil) || (kid == "" && ks.digest != before))
	if !helped {
		v.blocked = time.Now().Add(ks.minRefetch)
	}
	return err == nil
}

// ready makes sure the keys were fetched once, so that a login can tell
// "provider unreachable" from "bad token".
func (ks *keySet) ready(ctx context.Context) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.loaded {
		return nil
	}
	// Before the first success a retry is allowed every second: a provider
	// that comes back is used at once, and a flood still costs it one
	// request a second at most.
	if !ks.fetched.IsZero() && time.Since(ks.fetched) < min(ks.minRefetch, time.Second) {
		return errJWKSUnavailable
	}
	return ks.fetchLocked(ctx)
}

// lastFetch returns when the keys were last fetched. It does not wait for
// a fetch under way (ok is false then, as before the first success).
func (ks *keySet) lastFetch() (time.Time, bool) {
	if !ks.mu.TryLock() {
		return time.Time{}, false
	}
	defer ks.mu.Unlock()
	return ks.fetched, ks.loaded
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

// minRSABits is the smallest RSA modulus a signature is verified with.
const minRSABits = 2048

// usableKey reports whether a parsed JWK can verify a signature: public,
// valid as go-jose sees it, and for RSA with a modulus of at least
// minRSABits and a plausible exponent (go-jose accepts an empty "n").
func usableKey(k *jose.JSONWebKey) bool {
	if !k.IsPublic() || !k.Valid() {
		return false
	}
	if pub, ok := k.Key.(*rsa.PublicKey); ok {
		return pub.N.BitLen() >= minRSABits && pub.E >= 3 && pub.E%2 == 1
	}
	return true
}

// fetchLocked downloads the JWKS. Each key is parsed on its own and a key
// that cannot be used (a type or curve go-jose does not know, missing or
// bad parameters) is skipped (RFC 7517 §5): go-jose's JSONWebKeySet would
// refuse the whole set for it. Only public keys are kept: a JWKS that
// publishes a symmetric key cannot make the verifier accept HMAC tokens.
// On failure the old keys stay in use.
func (ks *keySet) fetchLocked(ctx context.Context) error {
	ks.fetched = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: status %d", errJWKSUnavailable, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("%w: %w", errJWKSUnavailable, err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err == nil && usableKey(&k) {
			keys = append(keys, k)
		}
	}
	ks.keys, ks.loaded, ks.digest = keys, true, sha256.Sum256(body)
	return nil
}
