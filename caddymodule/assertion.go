package caddymodule

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/k1sso/k1sso/store"
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
	key    *ecdsa.PrivateKey
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
	exp int64 // unix seconds; iat is exp - assertionTTL
	sig [es256SigSize]byte
}

// iat is when the assertion was signed.
func (as *assertion) iat() int64 { return as.exp - int64(assertionTTL/time.Second) }

// loadAssertionSigner loads the signing key from the store, creating it once
// for all instances when there is none.
func loadAssertionSigner(ctx context.Context, st store.Store) (*assertionSigner, error) {
	b, err := st.Get(ctx, assertionKeyName)
	if errors.Is(err, store.ErrNotFound) {
		key, gerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		der, merr := x509.MarshalECPrivateKey(key)
		if merr != nil {
			return nil, merr
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		if _, err = st.PutIfAbsent(ctx, assertionKeyName, pemBytes, 0); err != nil {
			return nil, err
		}
		// Another instance may have won the race: use what is stored.
		b, err = st.Get(ctx, assertionKeyName)
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
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, err
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{string(jose.ES256), pub.KeyID, "JWT"})
	if err != nil {
		return nil, err
	}
	return &assertionSigner{key: key, header: base64.RawURLEncoding.EncodeToString(header), jwks: jwks}, nil
}

// sign signs a new assertion for an identity, valid from now for
// assertionTTL: a JWS ES256 signature (RFC 7518 §3.4: R and S, 32 bytes
// each) over the header and the payload appendAssertionPayload writes.
// It signs with crypto/ecdsa directly; go-jose's signer built the same
// token with ten times the garbage, and every new session pays for it.
func (a *assertionSigner) sign(issuer, sub, email string, acc *account, now time.Time) (assertion, error) {
	as := assertion{exp: now.Add(assertionTTL).Unix()}
	var text [1024]byte
	digest := sha256.Sum256(a.appendSigningInput(text[:0], issuer, sub, email, acc, &as))
	r, s, err := ecdsa.Sign(rand.Reader, a.key, digest[:])
	if err != nil {
		return as, err
	}
	r.FillBytes(as.sig[:es256SigSize/2]) // both are below the P-256 order
	s.FillBytes(as.sig[es256SigSize/2:])
	return as, nil
}

// encode returns the token text of a signed assertion: its signing input
// rebuilt by the same code that made the signed bytes, so byte-identical,
// then the signature. One allocation: the returned string.
func (a *assertionSigner) encode(issuer, sub, email string, acc *account, as *assertion) string {
	var text [1024]byte // larger tokens spill to the heap
	tok := a.appendSigningInput(text[:0], issuer, sub, email, acc, as)
	tok = append(tok, '.')
	return string(base64.RawURLEncoding.AppendEncode(tok, as.sig[:]))
}

// appendSigningInput appends the JWS signing input of an assertion,
// header "." payload, both base64url (RFC 7515 §5.1).
func (a *assertionSigner) appendSigningInput(dst []byte, issuer, sub, email string, acc *account, as *assertion) []byte {
	var scratch [512]byte // the payload JSON
	payload := appendAssertionPayload(scratch[:0], issuer, sub, email, acc, as.iat(), as.exp)
	dst = append(dst, a.header...)
	dst = append(dst, '.')
	return base64.RawURLEncoding.AppendEncode(dst, payload)
}
