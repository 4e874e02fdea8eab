package caddymodule

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

// backchannelLogoutEvent is the member of a logout token's events claim
// that makes it a logout token (Back-Channel Logout 1.0 §2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutClaimNames are the claims go-oidc reads from a logout token.
var logoutClaimNames = [...]string{"iss", "sub", "aud", "exp", "iat", "jti", "events", "sid", "nonce"}

// checkLogoutClaims adds to go-oidc's VerifyLogout what encoding/json's
// case-insensitive field matching leaves out: JWT member names are
// case-sensitive (RFC 7519 §10.1.1), so "Events", "SID" or a
// "backchannel-logoUt" event must not stand in for the real claims, and the
// event's value must be a JSON object, not null or a number.
func checkLogoutClaims(lt *oidc.LogoutToken) error {
	var claims map[string]json.RawMessage
	if err := lt.Claims(&claims); err != nil {
		return errors.New("the claims are not a JSON object")
	}
	for k := range claims {
		for _, name := range logoutClaimNames {
			if k != name && strings.EqualFold(k, name) {
				return errors.New("claim " + name + " is spelled with other letter cases")
			}
		}
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
