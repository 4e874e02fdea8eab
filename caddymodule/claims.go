package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// go-oidc decodes a verified JWT's claims with encoding/json, which matches
// member names regardless of letter case and lets the last of "email" and
// "EMAIL" win. JWT claim names are case-sensitive (RFC 7519 §10.1.1), so
// "EMAIL" is another claim: a token that carries a case variant of a claim
// k1sso reads is refused rather than read either way.

// idTokenClaimNames are the ID token claims go-oidc and idClaims read.
var idTokenClaimNames = []string{"iss", "aud", "exp", "nonce", "sub", "email", "email_verified", "name", "sid", "k1_company", "amr", "auth_time", "azp", "iat"}

// logoutClaimNames are the logout token claims go-oidc and verifyLogoutToken read.
var logoutClaimNames = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "events", "sid", "nonce"}

// backchannelLogoutEvent is the member of a logout token's events claim
// that makes it a logout token (Back-Channel Logout 1.0 §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// exactClaims decodes a verified token's claims (through decode, go-oidc's
// Claims method) and refuses them when one of names is spelled with other
// letter case.
func exactClaims(decode func(any) error, names []string) (map[string]json.RawMessage, error) {
	var claims map[string]json.RawMessage
	if err := decode(&claims); err != nil {
		return nil, errors.New("the claims are not a JSON object")
	}
	for k := range claims {
		for _, name := range names {
			if k != name && strings.EqualFold(k, name) {
				return nil, errors.New("claim " + name + " is spelled with other letter case")
			}
		}
	}
	return claims, nil
}

// logoutTokenMaxAge is how long after its iat a logout token without exp
// is accepted. Back-Channel Logout 1.0 made exp required late (errata 1),
// and OPs written to the earlier text (Ory Hydra v2.3.0 among them) send
// none; a token is sent the moment the logout happens, so a short window
// after iat loses nothing, and jti replay is checked for that window.
const logoutTokenMaxAge = 2 * time.Minute

// logoutToken is a verified back-channel logout token.
type logoutToken struct {
	Issuer    string
	Subject   string
	SessionID string
	TokenID   string
	IssuedAt  time.Time
	// Expiry is the token's exp, or iat + logoutTokenMaxAge without one.
	Expiry time.Time
}

// verifyLogoutToken checks a back-channel logout token (§2.6): go-oidc
// checks the signature against K1's keys and discovery's algorithms, iss
// and aud; the claims of a logout token are read here, by their exact
// names (see exactClaims): the logout event object, no nonce, a jti, sub
// or sid, iat not in the future, and exp (or, without one, an iat of the
// last logoutTokenMaxAge).
func (p *k1Provider) verifyLogoutToken(ctx context.Context, raw string, skew time.Duration, now time.Time) (*logoutToken, error) {
	tok, err := p.logoutVerifier(skew).Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	claims, err := exactClaims(tok.Claims, logoutClaimNames)
	if err != nil {
		return nil, err
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(claims["events"], &events); err != nil || events == nil {
		return nil, errors.New("the events claim is not a JSON object")
	}
	var event map[string]json.RawMessage
	if err := json.Unmarshal(events[backchannelLogoutEvent], &event); err != nil || event == nil {
		return nil, errors.New("the events claim has no back-channel logout event object")
	}
	if _, ok := claims["nonce"]; ok {
		return nil, errors.New("a logout token must not contain a nonce")
	}
	lt := &logoutToken{Issuer: tok.Issuer}
	for name, dst := range map[string]*string{"sub": &lt.Subject, "sid": &lt.SessionID, "jti": &lt.TokenID} {
		if v, ok := claims[name]; ok && json.Unmarshal(v, dst) != nil {
			return nil, errors.New("claim " + name + " is not a string")
		}
	}
	if lt.TokenID == "" {
		return nil, errors.New("the jti claim is missing")
	}
	if lt.Subject == "" && lt.SessionID == "" {
		return nil, errors.New("a logout token needs sub, sid or both")
	}
	iat, ok, err := numericDate(claims, "iat")
	if err != nil || !ok || iat.After(now.Add(skew)) {
		return nil, errors.New("iat missing or in the future")
	}
	lt.IssuedAt = iat
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, err
	case ok:
		lt.Expiry = exp
	default:
		lt.Expiry = iat.Add(logoutTokenMaxAge)
	}
	if !now.Add(-skew).Before(lt.Expiry) {
		return nil, errors.New("the logout token has expired")
	}
	if nbf, ok, err := numericDate(claims, "nbf"); err != nil || (ok && now.Add(skew).Before(nbf)) {
		return nil, errors.New("the logout token is not valid yet (nbf)")
	}
	return lt, nil
}

// numericDate reads a JWT NumericDate claim (RFC 7519 §2: seconds, maybe
// with a fraction); ok is false when the claim is absent.
func numericDate(claims map[string]json.RawMessage, name string) (t time.Time, ok bool, err error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || f < 0 || f > math.MaxInt32*4 {
		return time.Time{}, false, errors.New("claim " + name + " is not a NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}
