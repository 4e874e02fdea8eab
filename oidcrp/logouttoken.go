package oidcrp

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

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
	// Issuer, Subject, SessionID and TokenID are iss, sub, sid and jti;
	// Subject or SessionID may be empty, not both.
	Issuer    string
	Subject   string
	SessionID string
	TokenID   string
	// IssuedAt is iat.
	IssuedAt time.Time
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
