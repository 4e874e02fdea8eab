package oidcrp

import (
	"context"
	"crypto/subtle"
	"encoding/json"
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
	Issuer          string
	Subject         string
	Audience        []string
	AuthorizedParty string
	Nonce           string
	Expiry          time.Time
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

// logoutTokenClaimNames are the logout token claims read here and by go-oidc.
var logoutTokenClaimNames = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "events", "sid", "nonce"}

// BackchannelLogoutEvent is the member of a logout token's events claim
// that makes it a logout token (Back-Channel Logout 1.0 §2.4).
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutTokenMaxAge is how long after its iat a logout token without exp
// is accepted. Back-Channel Logout 1.0 made exp required late (errata 1),
// and providers written to the earlier text (Ory Hydra v2.3.0 among them)
// send none; a token is sent the moment the logout happens, so a short
// window after iat loses nothing, and a jti is to be refused again for
// that window.
const LogoutTokenMaxAge = 2 * time.Minute

// LogoutToken is a verified back-channel logout token.
type LogoutToken struct {
	Issuer    string
	Subject   string
	SessionID string
	TokenID   string
	IssuedAt  time.Time
	// Expiry is the token's exp, or iat + LogoutTokenMaxAge without one.
	Expiry time.Time
}

// VerifyLogoutToken checks a back-channel logout token (Back-Channel
// Logout 1.0 §2.6): the signature as for ID tokens (but with its own
// refetch budget of the key set: anyone can POST a logout token), iss
// and aud; then, by their exact names, the logout event object, no nonce,
// a jti, sub or sid, iat not in the future (beyond skew), and exp (or,
// without one, an iat of the last LogoutTokenMaxAge). A failure is an
// *Error.
func (p *Provider) VerifyLogoutToken(ctx context.Context, raw string, skew time.Duration) (*LogoutToken, error) {
	tok, err := p.verifySignature(ctx, p.keys.logoutTokens, raw)
	if err != nil {
		return nil, err
	}
	if tok.Issuer != p.Issuer() {
		return nil, failWith(ReasonIssuer, fmt.Errorf("logout token issued by %q, want %q", tok.Issuer, p.Issuer()))
	}
	if !slices.Contains(tok.Audience, p.c.cfg.ClientID) {
		return nil, failWith(ReasonAudience, fmt.Errorf("logout token for audience %q, want %q", tok.Audience, p.c.cfg.ClientID))
	}
	now := p.c.cfg.Now()
	claims, err := exactClaims(tok.Claims, logoutTokenClaimNames)
	if err != nil {
		return nil, err
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(claims["events"], &events); err != nil || events == nil {
		return nil, fail(ReasonEvent, "the events claim is not a JSON object")
	}
	var event map[string]json.RawMessage
	if err := json.Unmarshal(events[BackchannelLogoutEvent], &event); err != nil || event == nil {
		return nil, fail(ReasonEvent, "the events claim has no back-channel logout event object")
	}
	if _, ok := claims["nonce"]; ok {
		return nil, fail(ReasonNonce, "a logout token must not contain a nonce")
	}
	lt := &LogoutToken{Issuer: tok.Issuer}
	for name, dst := range map[string]*string{"sub": &lt.Subject, "sid": &lt.SessionID, "jti": &lt.TokenID} {
		if v, ok := claims[name]; ok && json.Unmarshal(v, dst) != nil {
			return nil, fail(ReasonClaims, "claim "+name+" is not a string")
		}
	}
	if lt.TokenID == "" {
		return nil, fail(ReasonClaims, "the jti claim is missing")
	}
	if lt.Subject == "" && lt.SessionID == "" {
		return nil, fail(ReasonSubject, "a logout token needs sub, sid or both")
	}
	iat, ok, err := numericDate(claims, "iat")
	if err != nil || !ok || iat.After(now.Add(skew)) {
		return nil, fail(ReasonIssuedAt, "iat missing or in the future")
	}
	lt.IssuedAt = iat
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, err
	case ok:
		lt.Expiry = exp
	default:
		lt.Expiry = iat.Add(LogoutTokenMaxAge)
	}
	if !now.Add(-skew).Before(lt.Expiry) {
		return nil, fail(ReasonExpired, "the logout token has expired")
	}
	if nbf, ok, err := numericDate(claims, "nbf"); err != nil || (ok && now.Add(skew).Before(nbf)) {
		return nil, fail(ReasonNotYetValid, "the logout token is not valid yet (nbf)")
	}
	return lt, nil
}
