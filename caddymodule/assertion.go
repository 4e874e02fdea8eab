package caddymodule

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// assertionKeyName is where the ES256 key of X-K1-Assertion lives in the
// store, so restarts and other instances sign with (and publish) the same key.
const assertionKeyName = "assertion/es256.pem"

// assertionAudience is the aud of every assertion.
const assertionAudience = "bms"

// assertionTTL is how long an assertion is valid; it is re-signed when less
// than assertionRefresh is left, so the upstream always gets a fresh one
// while the proxy signs about once per session and four minutes.
const (
	assertionTTL     = 5 * time.Minute
	assertionRefresh = time.Minute
)

// assertionSigner signs X-K1-Assertion JWTs and publishes the public key.
type assertionSigner struct {
	signer jose.Signer
	header string // base64url of the protected header, the same in every token
	jwks   []byte // the JSON of /.k1sso/jwks.json
}

// es256SigSize is the size of an ES256 JWS signature: R and S, 32 bytes each.
const es256SigSize = 64

// assertion is a signed X-K1-Assertion as the session cache keeps it: the
// signature and the times, not the token text. The text is rebuilt for each
// request from these and the identity (JSON and base64, no crypto), which
// keeps every cached session about 300 bytes smaller than holding the text
// would (see BENCHMARKS.md).
type assertion struct {
	iat, exp int64
	sig      [es256SigSize]byte
}

// loadAssertionSigner loads the signing key from the store, creating it once
// for all instances when there is none.
func loadAssertionSigner(ctx context.Context, store Store) (*assertionSigner, error) {
	b, err := store.Get(ctx, assertionKeyName)
	if errors.Is(err, errNotFound) {
		key, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		der, merr := x509.MarshalECPrivateKey(key)
		if merr != nil {
			return nil, merr
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		if _, err = store.PutIfAbsent(ctx, assertionKeyName, pemBytes, 0); err != nil {
			return nil, err
		}
		// Another instance may have won the race: use what is stored.
		b, err = store.Get(ctx, assertionKeyName)
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("stored assertion key is not PEM")
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing stored assertion key: %w", err)
	}
	return newAssertionSigner(key)
}

func newAssertionSigner(key *ecdsa.PrivateKey) (*assertionSigner, error) {
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.ES256), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	// 96 bits of the RFC 7638 thumbprint name the key uniquely; the short
	// kid keeps every assertion (one per cached session) smaller.
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp[:12])
	sig, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, err
	}
	a := &assertionSigner{signer: sig, jwks: jwks}
	// The protected header depends on the key alone; take it from one
	// signature so encode can reuse it.
	jws, err := sig.Sign([]byte("{}"))
	if err != nil {
		return nil, err
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	a.header, _, _ = strings.Cut(compact, ".")
	return a, nil
}

// sign signs a new assertion for an identity, valid from now for
// assertionTTL.
func (a *assertionSigner) sign(issuer, sub, email string, acc *account, now time.Time) (assertion, error) {
	as := assertion{iat: now.Unix(), exp: now.Add(assertionTTL).Unix()}
	payload := appendAssertionPayload(make([]byte, 0, 256), issuer, sub, email, acc, as.iat, as.exp)
	jws, err := a.signer.Sign(payload)
	if err != nil {
		return as, err
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return as, err
	}
	// encode rebuilds the token from the cached header, so a token whose
	// header differs must never be cached.
	header, rest, _ := strings.Cut(compact, ".")
	if header != a.header {
		return as, errors.New("assertion: protected header is not the cached one")
	}
	n, err := base64.RawURLEncoding.Decode(as.sig[:], []byte(rest[strings.LastIndexByte(rest, '.')+1:]))
	if err != nil || n != es256SigSize {
		return as, fmt.Errorf("assertion: unexpected ES256 signature (%d bytes): %v", n, err)
	}
	return as, nil
}

// encode returns the token text of a signed assertion. The payload is
// rebuilt with the same encoder that made the signed bytes, so it is
// byte-identical. One allocation: the returned string.
func (a *assertionSigner) encode(issuer, sub, email string, acc *account, as *assertion) string {
	var scratch [512]byte // the payload JSON; larger payloads spill to the heap
	payload := appendAssertionPayload(scratch[:0], issuer, sub, email, acc, as.iat, as.exp)
	enc := base64.RawURLEncoding
	var b strings.Builder
	b.Grow(len(a.header) + 1 + enc.EncodedLen(len(payload)) + 1 + enc.EncodedLen(es256SigSize))
	b.WriteString(a.header)
	b.WriteByte('.')
	var text [1024]byte
	b.Write(enc.AppendEncode(text[:0], payload))
	b.WriteByte('.')
	b.Write(enc.AppendEncode(text[:0], as.sig[:]))
	return b.String()
}
