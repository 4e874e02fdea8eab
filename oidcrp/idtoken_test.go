package oidcrp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/oidcrp"
)

// claimNames are the claims the tests read with Claims, as caddymodule
// names its own.
var claimNames = []string{"email", "email_verified", "name", "sid", "amr"}

// TestVerifyIDToken: each defect of OIDC Core §3.1.3.7 or the RP test
// plan in the ID token is refused with its reason; the valid variants
// are accepted (the unit-level twin of caddymodule's TestHostileOP).
func TestVerifyIDToken(t *testing.T) {
	op := hostileop.Start(t)
	c := newClient(t, op)
	p := provider(t, c)
	now := time.Now()
	for _, tc := range []struct {
		name string
		b    hostileop.Behavior
		want oidcrp.Reason // "": accepted
	}{
		{name: "valid"},
		{name: "bad signature", b: hostileop.Behavior{Sign: hostileop.SignBadSignature}, want: oidcrp.ReasonSignature},
		{name: "alg none", b: hostileop.Behavior{Sign: hostileop.SignNone}, want: oidcrp.ReasonSignature},
		{name: "HS256 with the RSA public key", b: hostileop.Behavior{Sign: hostileop.SignHS256PublicKey}, want: oidcrp.ReasonSignature},
		{name: "PS256 not advertised", b: hostileop.Behavior{Sign: hostileop.SignPS256}, want: oidcrp.ReasonSignature},
		{name: "unknown key", b: hostileop.Behavior{Sign: hostileop.SignUnknownKey}, want: oidcrp.ReasonSignature},
		{name: "embedded jwk", b: hostileop.Behavior{Sign: hostileop.SignAttackerKey, Header: func(h map[string]any) {
			h["jwk"], h["kid"] = op.AttackerJWK(), op.CurrentKid()
		}}, want: oidcrp.ReasonSignature},
		{name: "jku to the attacker", b: hostileop.Behavior{Sign: hostileop.SignAttackerKey, Header: func(h map[string]any) {
			h["jku"] = op.AttackerURL() + "jwks"
		}}, want: oidcrp.ReasonSignature},
		{name: "unknown crit extension", b: hostileop.Behavior{Header: func(h map[string]any) {
			h["crit"], h["http://example.com/must-understand"] = []string{"http://example.com/must-understand"}, true
		}}, want: oidcrp.ReasonSignature},
		{name: "wrong iss", b: hostileop.Behavior{Claims: set("iss", "http://evil.example")}, want: oidcrp.ReasonIssuer},
		{name: "iss with a trailing slash", b: hostileop.Behavior{Claims: set("iss", op.URL+"/")}, want: oidcrp.ReasonIssuer},
		{name: "wrong aud", b: hostileop.Behavior{Claims: set("aud", "other-client")}, want: oidcrp.ReasonAudience},
		{name: "several aud without azp", b: hostileop.Behavior{Claims: set("aud", []string{hostileop.ClientID, "other-client"})}, want: oidcrp.ReasonAuthorizedPartyMissing},
		{name: "several aud with our azp", b: hostileop.Behavior{Claims: func(c map[string]any) {
			c["aud"], c["azp"] = []string{hostileop.ClientID, "other-client"}, hostileop.ClientID
		}}},
		{name: "aud array of one without azp", b: hostileop.Behavior{Claims: set("aud", []string{hostileop.ClientID})}},
		{name: "wrong azp", b: hostileop.Behavior{Claims: set("azp", "other-client")}, want: oidcrp.ReasonAuthorizedParty},
		{name: "no sub", b: hostileop.Behavior{Claims: del("sub")}, want: oidcrp.ReasonSubject},
		{name: "sub of 256 characters", b: hostileop.Behavior{Claims: set("sub", strings.Repeat("s", 256))}, want: oidcrp.ReasonSubject},
		{name: "no iat", b: hostileop.Behavior{Claims: del("iat")}, want: oidcrp.ReasonIssuedAt},
		{name: "iat far in the future", b: hostileop.Behavior{Claims: set("iat", now.Add(time.Hour).Unix())}, want: oidcrp.ReasonIssuedAt},
		{name: "iat within the skew", b: hostileop.Behavior{Claims: set("iat", now.Add(time.Minute).Unix())}},
		{name: "iat a string", b: hostileop.Behavior{Claims: set("iat", "now")}, want: oidcrp.ReasonClaims},
		{name: "expired", b: hostileop.Behavior{Claims: set("exp", now.Add(-10*time.Minute).Unix())}, want: oidcrp.ReasonExpired},
		{name: "no exp", b: hostileop.Behavior{Claims: del("exp")}, want: oidcrp.ReasonExpired},
		{name: "expired within the skew", b: hostileop.Behavior{Claims: set("exp", now.Add(-time.Minute).Unix())}},
		{name: "nbf far in the future", b: hostileop.Behavior{Claims: set("nbf", now.Add(time.Hour).Unix())}, want: oidcrp.ReasonNotYetValid},
		{name: "nbf a string", b: hostileop.Behavior{Claims: set("nbf", "soon")}, want: oidcrp.ReasonClaims},
		{name: "nbf now", b: hostileop.Behavior{Claims: set("nbf", now.Unix())}},
		{name: "no kid, one key", b: hostileop.Behavior{NoKid: true}},
		{name: "nonce missing", b: hostileop.Behavior{Claims: del("nonce")}, want: oidcrp.ReasonNonce},
		{name: "nonce wrong", b: hostileop.Behavior{Claims: set("nonce", "not-the-nonce-we-sent")}, want: oidcrp.ReasonNonce},
		{name: "SUB for sub", b: hostileop.Behavior{Claims: func(c map[string]any) { c["SUB"] = c["sub"]; delete(c, "sub") }}, want: oidcrp.ReasonClaimNames},
		{name: "Email for email (a name of the caller's)", b: hostileop.Behavior{Claims: func(c map[string]any) { c["Email"] = c["email"]; delete(c, "email") }}, want: oidcrp.ReasonClaimNames},
		{name: "Email beside email", b: hostileop.Behavior{Claims: set("EMAIL", "mallory@evil.example")}, want: oidcrp.ReasonClaimNames},
		{name: "claims not an object of the right types", b: hostileop.Behavior{Claims: set("exp", "tomorrow")}, want: oidcrp.ReasonClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, _, nonce := login(t, c, p, op, tc.b)
			idt, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: 2 * time.Minute, ClaimNames: claimNames})
			wantReason(t, err, tc.want)
			if err != nil {
				if idt != nil {
					t.Fatal("a refused token came with its claims")
				}
				return
			}
			var claims struct {
				Email string `json:"email"`
			}
			if err := idt.Claims(&claims); err != nil || claims.Email != "bob@acme.example" {
				t.Errorf("claims: %v %q", err, claims.Email)
			}
			if idt.Issuer != op.URL || idt.Subject != "k1|bob" || idt.Nonce != nonce || idt.IssuedAt == 0 || idt.Expiry.IsZero() {
				t.Errorf("token %+v", idt)
			}
		})
	}
	if n := op.AttackerHits(); n != 0 {
		t.Errorf("the attacker's jku was fetched %d times", n)
	}
}

// TestVerifyIDTokenNoKidSeveralKeys: a token without kid is refused when
// the JWKS has several keys, even though one of them made the signature.
func TestVerifyIDTokenNoKidSeveralKeys(t *testing.T) {
	op := hostileop.Start(t)
	op.AddKey(t)
	c := newClient(t, op)
	p := provider(t, c)
	raw, _, nonce := login(t, c, p, op, hostileop.Behavior{NoKid: true})
	_, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute})
	wantReason(t, err, oidcrp.ReasonSignature)
	raw, _, nonce = login(t, c, p, op, hostileop.Behavior{})
	_, err = p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute})
	wantReason(t, err, "")
}

// TestVerifyIDTokenRotationAndUnusableKeys: keys that cannot be used are
// skipped (RFC 7517 §5) and the key that signed the token still works:
// first, after a rotation (picked up by the next token), and without kid.
func TestVerifyIDTokenRotationAndUnusableKeys(t *testing.T) {
	unusable := []map[string]any{
		{"kty": "AKP", "alg": "ML-DSA-65", "kid": "pq-1", "use": "sig", "pub": "AAAA"},
		{"kty": "OKP", "crv": "Ed448", "kid": "ed448-1", "x": "AAAA"},
		{"kty": "RSA", "kid": "rsa-bad", "alg": "RS256", "n": "", "e": "AQAB"},
		{"kty": "RSA", "kid": "rsa-bad-e", "alg": "RS256", "n": "AAAA", "e": "!!"},
		{"kty": "EC", "crv": "P-192", "kid": "ec-192", "x": "AAAA", "y": "AAAA"},
		{"kid": "no-kty", "use": "sig"},
		{"kty": 42},
		{"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"},
	}
	op := hostileop.Start(t)
	c := newClient(t, op, func(cfg *oidcrp.Config) { cfg.MinRefetch = time.Hour })
	p := provider(t, c)
	verify := func(b hostileop.Behavior) error {
		b.ExtraJWKS = unusable
		raw, _, nonce := login(t, c, p, op, b)
		_, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute})
		return err
	}
	op.Set(hostileop.Behavior{ExtraJWKS: unusable})
	wantReason(t, verify(hostileop.Behavior{}), "")
	if _, ok := p.KeysFetched(); !ok {
		t.Error("KeysFetched: not fetched after a verified token")
	}
	op.Rotate(t)
	wantReason(t, verify(hostileop.Behavior{}), "")
	wantReason(t, verify(hostileop.Behavior{NoKid: true}), "")
	before := op.JWKSHits()
	for range 5 {
		wantReason(t, verify(hostileop.Behavior{Sign: hostileop.SignUnknownKey}), oidcrp.ReasonSignature)
	}
	if n := op.JWKSHits() - before; n != 1 {
		t.Errorf("5 tokens with unknown kids made %d JWKS fetches, want 1", n)
	}
}

// TestVerifyIDTokenKeysUnavailable: keys that cannot be fetched are an
// outage (ReasonUnavailable), not a bad token; a retry waits a second.
func TestVerifyIDTokenKeysUnavailable(t *testing.T) {
	op := hostileop.Start(t)
	op.SetDiscovery(set("jwks_uri", op.URL+"/no-such-jwks"))
	c := newClient(t, op)
	p := provider(t, c)
	raw, _, nonce := login(t, c, p, op, hostileop.Behavior{})
	for range 2 {
		_, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce})
		wantReason(t, err, oidcrp.ReasonUnavailable)
	}
	if _, ok := p.KeysFetched(); ok {
		t.Error("KeysFetched: ok without a successful fetch")
	}
}

// TestVerifyIDTokenClock: the injected clock judges exp and iat.
func TestVerifyIDTokenClock(t *testing.T) {
	op := hostileop.Start(t)
	var shift time.Duration
	c := newClient(t, op, func(cfg *oidcrp.Config) { cfg.Now = func() time.Time { return time.Now().Add(shift) } })
	p := provider(t, c)
	raw, _, nonce := login(t, c, p, op, hostileop.Behavior{})
	opts := oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute}
	shift = time.Hour
	_, err := p.VerifyIDToken(context.Background(), raw, opts)
	wantReason(t, err, oidcrp.ReasonExpired)
	shift = -time.Hour
	_, err = p.VerifyIDToken(context.Background(), raw, opts)
	wantReason(t, err, oidcrp.ReasonIssuedAt)
	shift = 0
	_, err = p.VerifyIDToken(context.Background(), raw, opts)
	wantReason(t, err, "")
}

// TestUserInfo: userinfo answers with the access token of the exchange,
// through the Client's HTTP client, and refuses a made-up one.
func TestUserInfo(t *testing.T) {
	op := hostileop.Start(t)
	c := newClient(t, op)
	p := provider(t, c)
	_, tok, _ := login(t, c, p, op, hostileop.Behavior{})
	ui, err := p.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil || ui.Subject != "k1|bob" || ui.Email != "bob@acme.example" {
		t.Fatalf("userinfo: %v %+v", err, ui)
	}
	if _, err := p.UserInfo(context.Background(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "made-up"})); err == nil {
		t.Fatal("userinfo accepted a made-up access token")
	}
}
