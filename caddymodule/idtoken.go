package caddymodule

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/oidcrp"
)

func init() {
	featureOptions["clock_skew"] = parseClockSkew
}

// Clock skew between K1 and this proxy: how far in the future an ID token's
// iat may lie and how long after its exp it is still accepted.
const (
	defaultClockSkew = 2 * time.Minute
	maxClockSkew     = 10 * time.Minute
)

// parseClockSkew parses `clock_skew <duration>`.
func parseClockSkew(h *Handler, d *caddyfile.Dispenser, args []string) error {
	if len(args) != 1 {
		return d.Errf("k1sso: clock_skew takes exactly one duration")
	}
	v, err := caddy.ParseDuration(args[0])
	if err != nil || v < 0 || v > maxClockSkew {
		return d.Errf("k1sso: clock_skew: %q must be a duration from 0s to %s", args[0], maxClockSkew)
	}
	if v == 0 {
		v = -1 // explicit zero: no leeway (0 in JSON means the default)
	}
	h.ClockSkew = caddy.Duration(v)
	return nil
}

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
	IssuedAt      int64    `json:"iat"`
}

// idClaimNames are the claims idClaims reads beyond those oidcrp checks:
// spelled with other letter case they refuse the token (see
// oidcrp.IDTokenOptions).
var idClaimNames = []string{"email", "email_verified", "name", "sid", "k1_company", "amr", "auth_time"}

// idTokenReasons are the login failure reasons of oidcrp's; a reason not
// listed is id_token_invalid (signature, iss, aud, nbf).
var idTokenReasons = map[oidcrp.Reason]string{
	oidcrp.ReasonExpired:                "id_token_expired",
	oidcrp.ReasonClaimNames:             "id_token_claim_names",
	oidcrp.ReasonClaims:                 "id_token_claims",
	oidcrp.ReasonNonce:                  "nonce_mismatch",
	oidcrp.ReasonAuthorizedPartyMissing: "azp_missing",
	oidcrp.ReasonAuthorizedParty:        "azp_mismatch",
	oidcrp.ReasonIssuedAt:               "iat_invalid",
	oidcrp.ReasonSubject:                "sub_invalid",
}

// verifyIDToken checks an ID token per OIDC Core §3.1.3.7: oidcrp checks
// the signature against K1's JWKS with the algorithms from discovery
// (never none, never HMAC), iss, aud, exp, exact claim names, azp, iat,
// nonce and sub; this adds the header-safety of the claims,
// email_verified and, when configured, the second factor.
func (h *Handler) verifyIDToken(ctx context.Context, p *k1Provider, raw, nonce string, tok *oauth2.Token) (*idClaims, error) {
	bad := func(reason string) *loginFailure {
		return fail(http.StatusBadRequest, reason, "Sign-in failed", "KaseyaOne's answer could not be verified, so you were not signed in.")
	}
	idt, err := p.VerifyIDToken(ctx, raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: h.clockSkew(), ClaimNames: idClaimNames})
	if err != nil {
		switch r := oidcrp.ReasonOf(err); {
		case r == oidcrp.ReasonUnavailable:
			// Keys that cannot be fetched are K1's outage, not a bad token.
			return nil, withCause(k1Unreachable(), err) // diagnose.go
		case idTokenReasons[r] != "":
			return nil, bad(idTokenReasons[r])
		default:
			return nil, withCause(bad("id_token_invalid"), err)
		}
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		return nil, bad("id_token_claims")
	}
	if !validHeaderValue(c.Subject) {
		return nil, bad("sub_invalid")
	}
	if c.Email == "" {
		// The email may come only from userinfo; its sub must match.
		ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
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
