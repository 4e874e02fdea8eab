package caddymodule

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// go-oidc decodes a verified JWT's claims with encoding/json, which matches
// member names regardless of letter case and lets the last of "email" and
// "EMAIL" win. JWT claim names are case-sensitive (RFC 7519 §10.1.1), so
// "EMAIL" is another claim: a token that carries a case variant of a claim
// k1sso reads is refused rather than read either way.

// idTokenClaimNames are the ID token claims go-oidc and idClaims read.
var idTokenClaimNames = []string{"iss", "aud", "exp", "nonce", "sub", "email", "email_verified", "name", "sid", "k1_company", "amr", "auth_time", "azp", "iat"}

// logoutClaimNames are the logout token claims go-oidc reads.
var logoutClaimNames = []string{"iss", "sub", "aud", "exp", "iat", "jti", "events", "sid", "nonce"}

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

// checkLogoutClaims adds to go-oidc's VerifyLogout the exact claim names
// and the exact event name, whose value must be a JSON object, not null or
// a number.
func checkLogoutClaims(lt *oidc.LogoutToken) error {
	claims, err := exactClaims(lt.Claims, logoutClaimNames)
	if err != nil {
		return err
	}
	var events map[string]json.RawMessage
	if err := json.Unmarshal(claims["events"], &events); err != nil || events == nil {
		return errors.New("the events claim is not a JSON object")
	}
	var event map[string]json.RawMessage
	if err := json.Unmarshal(events[backchannelLogoutEvent], &event); err != nil || event == nil {
		return errors.New("the events claim has no back-channel logout event object")
	}
	return nil
}
