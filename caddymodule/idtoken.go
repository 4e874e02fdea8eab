package caddymodule

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Clock skew between K1 and this proxy: how far in the future an ID token's
// iat may lie and how long after its exp it is still accepted.
const (
	defaultClockSkew = 2 * time.Minute
	maxClockSkew     = 10 * time.Minute
)

// clockSkew is the configured leeway, bounded so that a typo cannot make
// expired tokens valid for hours.
func (h *Handler) clockSkew() time.Duration {
	switch s := time.Duration(h.ClockSkew); {
	case s == 0:
		return defaultClockSkew
	case s < 0:
		return 0
	default:
		return min(s, maxClockSkew)
	}
}

// mfaMethods are amr values (RFC 8176) that show a second factor.
var mfaMethods = []string{"otp", "mfa", "hwk", "swk", "sms", "totp", "fpt", "face", "iris", "retina", "sc"}

// idClaims are the ID token claims k1sso uses.
type idClaims struct {
	Subject       string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified any      `json:"email_verified"` // some OPs send "true"
	Name          string   `json:"name"`
	SID           string   `json:"sid"`
	Company       string   `json:"k1_company"`
	AMR           []string `json:"amr"`
	AuthTime      int64    `json:"auth_time"`
	AZP           string   `json:"azp"`
	IssuedAt      int64    `json:"iat"`
}

// verifyIDToken checks an ID token per OIDC Core §3.1.3.7: go-oidc checks
// the signature against K1's JWKS with the algorithms from discovery (never
// none), iss, aud and exp; this adds exact claim names, azp, iat, nonce,
// sub, email_verified and, when configured, the second factor.
func (h *Handler) verifyIDToken(ctx context.Context, p *k1Provider, raw, nonce string, tok *oauth2.Token) (*idClaims, error) {
	bad := func(reason string) error {
		return fail(http.StatusBadRequest, reason, "Sign-in failed", "KaseyaOne's answer could not be verified, so you were not signed in.")
	}
	// Keys that cannot be fetched are K1's outage, not a bad token.
	if err := p.keys.ready(ctx); err != nil {
		return nil, withCause(k1Unreachable(), err) // diagnose.go
	}
	skew := h.clockSkew()
	idt, err := p.verifierWithSkew(skew).Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		if errors.As(err, &exp) {
			return nil, bad("id_token_expired")
		}
		return nil, withCause(bad("id_token_invalid").(*loginFailure), err)
	}
	if _, err := exactClaims(idt.Claims, idTokenClaimNames); err != nil {
		return nil, bad("id_token_claim_names")
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return nil, bad("id_token_claims")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, bad("nonce_mismatch")
	}
	if len(idt.Audience) > 1 && c.AZP == "" {
		return nil, bad("azp_missing")
	}
	if c.AZP != "" && c.AZP != h.cfg.clientID {
		return nil, bad("azp_mismatch")
	}
	if c.IssuedAt == 0 || time.Unix(c.IssuedAt, 0).After(time.Now().Add(skew)) {
		return nil, bad("iat_invalid")
	}
	if c.Subject == "" || len(c.Subject) > 255 || !validHeaderValue(c.Subject) {
		return nil, bad("sub_invalid")
	}
	if c.Email == "" {
		// The email may come only from userinfo; its sub must match.
		ui, err := p.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			if ctx.Err() != nil || isNetError(err) {
				return nil, withCause(k1Unreachable(), err)
			}
			return nil, bad("userinfo_failed")
		}
		if ui.Subject != c.Subject {
			return nil, bad("userinfo_sub_mismatch")
		}
		c.Email, c.EmailVerified = ui.Email, ui.EmailVerified
	}
	c.Email = normalEmail(c.Email)
	if !verified(c.EmailVerified) {
		return nil, fail(http.StatusForbidden, "email_unverified", "Email not verified",
			"Your KaseyaOne email address is not verified, so it cannot be matched to a BMS account.")
	}
	if !validHeaderValue(c.Email) || !validHeaderValue(c.Name) || !validHeaderValue(c.SID) || !validHeaderValue(c.Company) {
		return nil, bad("claims_invalid")
	}
	if h.RequireMFA && !slices.ContainsFunc(c.AMR, func(m string) bool { return slices.Contains(mfaMethods, m) }) {
		return nil, fail(http.StatusForbidden, "mfa_required", "Second factor required",
			"This BMS requires a KaseyaOne sign-in with a second factor (authenticator code).")
	}
	return &c, nil
}

// k1Unreachable is the refusal of a login whose call to K1 failed or timed
// out.
func k1Unreachable() *loginFailure {
	return fail(http.StatusServiceUnavailable, "k1_unreachable", "KaseyaOne is unreachable",
		"KaseyaOne could not be reached to complete the sign-in. Please try again in a minute.")
}

// isNetError reports a transport failure (refused, reset, timeout).
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// verified accepts email_verified as a JSON boolean or the string "true".
func verified(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}
