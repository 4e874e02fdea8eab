package oidcrp

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"
)

// idTokenClaimNames are the ID token claims read here and by go-oidc.
var idTokenClaimNames = []string{"iss", "aud", "exp", "nbf", "nonce", "sub", "azp", "iat"}

// nbfLeeway is how far in the future an ID token's nbf may lie: go-oidc's
// five minutes, counted from the clock set back by the skew as go-oidc's
// check was before this package did its own.
const nbfLeeway = 5 * time.Minute

// IDTokenOptions are what VerifyIDToken checks beyond the provider's
// issuer and the client ID.
type IDTokenOptions struct {
	// Nonce is the nonce sent in the authorization request; the token's
	// must be the same.
	Nonce string
	// ClockSkew is how far in the future iat may lie and how long after
	// exp the token is still accepted.
	ClockSkew time.Duration
	// ClaimNames are further claims the caller reads with Claims: a token
	// that also carries one of them in other letter case is refused.
	ClaimNames []string
}

// IDToken is a verified ID token.
type IDToken struct {
	// Issuer, Subject, Audience, AuthorizedParty and Nonce are iss, sub,
	// aud, azp and nonce.
	Issuer          string
	Subject         string
	Audience        []string
	AuthorizedParty string
	Nonce           string
	// Expiry is exp.
	Expiry time.Time
	// IssuedAt is iat in whole seconds, as the token carries it.
	IssuedAt int64

	claims func(any) error
}

// Claims decodes the token's claims into v (with encoding/json, so member
// names match regardless of case: name them in IDTokenOptions.ClaimNames).
func (t *IDToken) Claims(v any) error { return t.claims(v) }

// VerifyIDToken checks an ID token per OIDC Core §3.1.3.7: the signature
// with a key of the provider's JWKS and an algorithm discovery advertised
// (never none, never HMAC), then iss exactly the issuer, aud with the
// client ID, exp and nbf, the exact claim names, the nonce, azp, iat and
// sub. A failure is an *Error; ReasonUnavailable when the keys could not
// be fetched.
func (p *Provider) VerifyIDToken(ctx context.Context, raw string, opts IDTokenOptions) (*IDToken, error) {
	// Keys that cannot be fetched are the provider's outage, not a bad token.
	if err := p.keys.ready(ctx); err != nil {
		return nil, failWith(ReasonUnavailable, err)
	}
	idt, err := p.verifySignature(ctx, p.keys.idTokens, raw)
	if err != nil {
		return nil, err
	}
	now, skew := p.c.cfg.Now(), opts.ClockSkew
	if idt.Issuer != p.Issuer() {
		return nil, failWith(ReasonIssuer, fmt.Errorf("id token issued by %q, want %q", idt.Issuer, p.Issuer()))
	}
	if !slices.Contains(idt.Audience, p.c.cfg.ClientID) {
		return nil, failWith(ReasonAudience, fmt.Errorf("id token for audience %q, want %q", idt.Audience, p.c.cfg.ClientID))
	}
	if idt.Expiry.Before(now.Add(-skew)) {
		return nil, failWith(ReasonExpired, fmt.Errorf("id token expired at %s", idt.Expiry.UTC().Format(time.RFC3339)))
	}
	claims, err := exactClaims(idt.Claims, idTokenClaimNames, opts.ClaimNames)
	if err != nil {
		return nil, err
	}
	nbf, ok, err := numericDate(claims, "nbf")
	if err != nil {
		return nil, err
	}
	if ok && now.Add(-skew).Add(nbfLeeway).Before(nbf) {
		return nil, fail(ReasonNotYetValid, "id token not valid before "+nbf.UTC().Format(time.RFC3339))
	}
	var c struct {
		Subject  string `json:"sub"`
		AZP      string `json:"azp"`
		IssuedAt int64  `json:"iat"`
	}
	if err := idt.Claims(&c); err != nil {
		return nil, failWith(ReasonClaims, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(opts.Nonce)) != 1 {
		return nil, fail(ReasonNonce, "the nonce is not the one sent")
	}
	if len(idt.Audience) > 1 && c.AZP == "" {
		return nil, fail(ReasonAuthorizedPartyMissing, "several audiences and no azp")
	}
	if c.AZP != "" && c.AZP != p.c.cfg.ClientID {
		return nil, failWith(ReasonAuthorizedParty, fmt.Errorf("azp %q, want %q", c.AZP, p.c.cfg.ClientID))
	}
	if c.IssuedAt == 0 || time.Unix(c.IssuedAt, 0).After(now.Add(skew)) {
		return nil, fail(ReasonIssuedAt, "iat missing or in the future")
	}
	// OIDC Core §2: sub is at most 255 ASCII characters.
	if c.Subject == "" || len(c.Subject) > 255 {
		return nil, fail(ReasonSubject, "sub missing or longer than 255 characters")
	}
	return &IDToken{Issuer: idt.Issuer, Subject: c.Subject, Audience: idt.Audience, AuthorizedParty: c.AZP,
		Nonce: idt.Nonce, Expiry: idt.Expiry, IssuedAt: c.IssuedAt, claims: idt.Claims}, nil
}
