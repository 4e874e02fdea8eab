package oidcrp_test

import (
	"context"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/oidcrp"
)

// TestVerifyLogoutToken: the rules of Back-Channel Logout 1.0 §2.6, each
// broken once, with its reason; a token without exp is accepted for
// LogoutTokenMaxAge after its iat.
func TestVerifyLogoutToken(t *testing.T) {
	op := hostileop.Start(t)
	c := newClient(t, op)
	p := provider(t, c)
	now := time.Now()
	claims := func(edit func(map[string]any)) hostileop.Behavior { return hostileop.Behavior{Claims: edit} }
	for _, tc := range []struct {
		name string
		b    hostileop.Behavior
		want oidcrp.Reason
	}{
		{name: "valid"},
		{name: "sid only", b: claims(del("sub"))},
		{name: "sub only", b: claims(del("sid"))},
		{name: "bad signature", b: hostileop.Behavior{Sign: hostileop.SignBadSignature}, want: oidcrp.ReasonSignature},
		{name: "alg none", b: hostileop.Behavior{Sign: hostileop.SignNone}, want: oidcrp.ReasonSignature},
		{name: "wrong iss", b: claims(set("iss", "http://evil.example")), want: oidcrp.ReasonIssuer},
		{name: "wrong aud", b: claims(set("aud", "other-client")), want: oidcrp.ReasonAudience},
		{name: "no events", b: claims(del("events")), want: oidcrp.ReasonEvent},
		{name: "events without the logout event", b: claims(set("events", map[string]any{"other": map[string]any{}})), want: oidcrp.ReasonEvent},
		{name: "logout event not an object", b: claims(set("events", map[string]any{oidcrp.BackchannelLogoutEvent: true})), want: oidcrp.ReasonEvent},
		{name: "nonce", b: claims(set("nonce", "n")), want: oidcrp.ReasonNonce},
		{name: "no jti", b: claims(del("jti")), want: oidcrp.ReasonClaims},
		{name: "sid not a string", b: claims(set("sid", 7)), want: oidcrp.ReasonClaims},
		{name: "neither sub nor sid", b: claims(del("sub", "sid")), want: oidcrp.ReasonSubject},
		{name: "SID for sid", b: claims(func(c map[string]any) { c["SID"] = c["sid"]; delete(c, "sid") }), want: oidcrp.ReasonClaimNames},
		{name: "no iat", b: claims(del("iat")), want: oidcrp.ReasonIssuedAt},
		{name: "iat in the future", b: claims(set("iat", now.Add(time.Hour).Unix())), want: oidcrp.ReasonIssuedAt},
		{name: "expired", b: claims(set("exp", now.Add(-10*time.Minute).Unix())), want: oidcrp.ReasonExpired},
		{name: "exp not a NumericDate", b: claims(set("exp", "soon")), want: oidcrp.ReasonClaims},
		{name: "exp with a fraction", b: claims(set("exp", float64(now.Add(time.Minute).UnixMilli())/1000))},
		{name: "no exp, recent iat", b: claims(del("exp"))},
		{name: "no exp, iat older than the max age", b: claims(func(c map[string]any) {
			delete(c, "exp")
			c["iat"] = now.Add(-oidcrp.LogoutTokenMaxAge - 3*time.Minute).Unix()
		}), want: oidcrp.ReasonExpired},
		{name: "nbf in the future", b: claims(set("nbf", now.Add(time.Hour).Unix())), want: oidcrp.ReasonNotYetValid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lt, err := p.VerifyLogoutToken(context.Background(), op.LogoutToken(tc.b, "sid-1"), time.Minute)
			wantReason(t, err, tc.want)
			if err != nil {
				return
			}
			if lt.Issuer != op.URL || lt.TokenID == "" || lt.IssuedAt.IsZero() || !lt.Expiry.After(lt.IssuedAt) || (lt.Subject == "" && lt.SessionID == "") {
				t.Errorf("token %+v", lt)
			}
		})
	}
	lt, err := p.VerifyLogoutToken(context.Background(), op.LogoutToken(claims(del("exp")), "sid-1"), 0)
	if err != nil || lt.Expiry.Sub(lt.IssuedAt) != oidcrp.LogoutTokenMaxAge {
		t.Errorf("without exp: %v, expiry %s after iat, want %s", err, lt.Expiry.Sub(lt.IssuedAt), oidcrp.LogoutTokenMaxAge)
	}
}

// TestLogoutTokenBudget: made-up kids in logout tokens cost at most one
// JWKS fetch per interval, and do not keep ID tokens (their own budget)
// from picking up a rotation.
func TestLogoutTokenBudget(t *testing.T) {
	op := hostileop.Start(t)
	c := newClient(t, op, func(cfg *oidcrp.Config) { cfg.MinRefetch = time.Hour })
	p := provider(t, c)
	if _, err := p.VerifyLogoutToken(context.Background(), op.LogoutToken(hostileop.Behavior{}, "s"), time.Minute); err != nil {
		t.Fatal(err)
	}
	before := op.JWKSHits()
	for range 20 {
		_, err := p.VerifyLogoutToken(context.Background(), op.LogoutToken(hostileop.Behavior{Sign: hostileop.SignUnknownKey}, "s"), time.Minute)
		wantReason(t, err, oidcrp.ReasonSignature)
	}
	if n := op.JWKSHits() - before; n != 1 {
		t.Errorf("20 logout tokens with made-up kids made %d fetches, want 1", n)
	}
	op.Rotate(t)
	raw, _, nonce := login(t, c, p, op, hostileop.Behavior{})
	if _, err := p.VerifyIDToken(context.Background(), raw, oidcrp.IDTokenOptions{Nonce: nonce, ClockSkew: time.Minute}); err != nil {
		t.Fatalf("rotation after a logout flood: %v", err)
	}
	if _, err := p.VerifyLogoutToken(context.Background(), op.LogoutToken(hostileop.Behavior{}, "s"), time.Minute); err != nil {
		t.Fatalf("a logout token with the rotated-in key: %v", err)
	}
}
