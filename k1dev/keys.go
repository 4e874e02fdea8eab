package k1dev

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// rsaKey is one RS256 signing key.
type rsaKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *rsaKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *rsaKey) Key() any                                    { return k.key }
func (k *rsaKey) ID() string                                  { return k.id }

// publicKey is the verification half of an rsaKey, for the JWKS.
type publicKey struct{ k *rsaKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

// keyRing holds the signing keys: the last one signs, all are published.
type keyRing struct {
	mu   sync.Mutex
	keys []*rsaKey
}

// rotate adds a new key, which signs from now on.
func (r *keyRing) rotate() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating signing key: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, &rsaKey{id: randomID()[:16], key: key})
	return nil
}

// current returns the key that signs.
func (r *keyRing) current() *rsaKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys[len(r.keys)-1]
}

// public returns every key for the JWKS, newest first.
func (r *keyRing) public() []op.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]op.Key, 0, len(r.keys))
	for i := len(r.keys) - 1; i >= 0; i-- {
		out = append(out, publicKey{r.keys[i]})
	}
	return out
}

// sign signs claims with the current key as a compact JWS with header typ.
func (r *keyRing) sign(claims []byte, typ string) (string, error) {
	k := r.current()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.key, KeyID: k.id}}, opts)
	if err != nil {
		return "", fmt.Errorf("creating signer: %w", err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return jws.CompactSerialize()
}

// RotateKey adds a new RS256 signing key; tokens are signed with it from now
// on, and the old keys stay in the JWKS so earlier tokens still verify.
func (s *Server) RotateKey() error { return s.keys.rotate() }
