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
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
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
	jwks   []byte // the JSON of /.k1sso/jwks.json
}

// assertionClaims are the claims of X-K1-Assertion.
type assertionClaims struct {
	jwt.Claims
	Email   string   `json:"email"`
	BMSUser string   `json:"bms_user"`
	Tenant  string   `json:"tenant"`
	Roles   []string `json:"roles"`
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
	return &assertionSigner{signer: sig, jwks: jwks}, nil
}

// sign returns a new assertion for an identity and its expiry.
func (a *assertionSigner) sign(issuer string, s *session, acc *account, now time.Time) (string, time.Time, error) {
	exp := now.Add(assertionTTL)
	c := assertionClaims{
		Claims: jwt.Claims{
			Issuer:   issuer,
			Subject:  s.Subject,
			Audience: jwt.Audience{assertionAudience},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(exp),
		},
		Email:   s.Email,
		BMSUser: acc.BMSUser,
		Tenant:  acc.Tenant,
		Roles:   acc.Roles,
	}
	if c.Roles == nil {
		c.Roles = []string{}
	}
	tok, err := jwt.Signed(a.signer).Claims(c).Serialize()
	return tok, exp, err
}
