package oidcrp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// jwksServer publishes the public half of whatever keys the test sets.
type jwksServer struct {
	mu   sync.Mutex
	keys []jose.JSONWebKey
	hits atomic.Int64
	url  string
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		set := jose.JSONWebKeySet{Keys: s.keys}
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *jwksServer) publish(keys ...*rsa.PrivateKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = nil
	for _, k := range keys {
		s.keys = append(s.keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kidOf(k), Algorithm: "RS256", Use: "sig"})
	}
}

func kidOf(k *rsa.PrivateKey) string { return k.N.Text(36)[:12] }

// randomKid is a kid no key set publishes.
func randomKid(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signedBy(t *testing.T, k *rsa.PrivateKey) string { return signedAs(t, k, kidOf(k)) }

func signedAs(t *testing.T, k *rsa.PrivateKey, kid string) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := sig.Sign([]byte(`{"sub":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	return raw
}

// TestKeySetRefetchBudgets: concurrent tokens signed with a new key share
// one fetch; made-up kids in logout tokens cost at most one fetch per
// interval and do not keep ID tokens from picking up a rotation; an ID
// token refetch that did not help blocks further ones of its own view.
func TestKeySetRefetchBudgets(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t)
	a, b, c, unpublished := rsaKey(t), rsaKey(t), rsaKey(t), rsaKey(t)
	srv.publish(a)
	ks := newKeySet(srv.url, http.DefaultClient, []string{"RS256"}, DefaultMinRefetch)
	if err := ks.ready(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.idTokens.VerifySignature(ctx, signedBy(t, a)); err != nil {
		t.Fatalf("key a: %v", err)
	}

	srv.publish(b)
	tokB := signedBy(t, b)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := ks.idTokens.VerifySignature(ctx, tokB); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 20 tokens signed with the rotated-in key failed", n)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2 (first use, one for the rotation)", n)
	}

	before := srv.hits.Load()
	for i := 0; i < 20; i++ {
		if _, err := ks.logoutTokens.VerifySignature(ctx, signedAs(t, unpublished, randomKid(t))); err == nil {
			t.Fatal("a logout token with a made-up kid verified")
		}
	}
	if n := srv.hits.Load() - before; n != 1 {
		t.Fatalf("20 logout tokens with made-up kids made %d fetches, want 1", n)
	}
	srv.publish(c)
	if _, err := ks.idTokens.VerifySignature(ctx, signedBy(t, c)); err != nil {
		t.Fatalf("rotation after a logout flood: %v", err)
	}

	before = srv.hits.Load()
	for i := 0; i < 5; i++ {
		if _, err := ks.idTokens.VerifySignature(ctx, signedAs(t, unpublished, randomKid(t))); err == nil {
			t.Fatal("an ID token with an unpublished kid verified")
		}
	}
	if n := srv.hits.Load() - before; n != 1 {
		t.Fatalf("5 ID tokens with unpublished kids made %d fetches, want 1", n)
	}
}
