package oidcrp_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/oidcrp"
)

// The tests of package oidcrp run against the in-test hostile OP: no
// Caddy, only httptest servers on 127.0.0.1.

func set(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }

func del(keys ...string) func(map[string]any) {
	return func(c map[string]any) {
		for _, k := range keys {
			delete(c, k)
		}
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newClient is a Client of op (its issuer, client bms-proxy) with short
// backoffs; edit changes the Config.
func newClient(t *testing.T, op *hostileop.OP, edit ...func(*oidcrp.Config)) *oidcrp.Client {
	t.Helper()
	cfg := oidcrp.Config{Issuer: op.Issuer(), ClientID: hostileop.ClientID,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MinRefetch: 200 * time.Millisecond}
	for _, e := range edit {
		e(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return oidcrp.New(ctx, cfg)
}

// provider discovers op.
func provider(t *testing.T, c *oidcrp.Client) *oidcrp.Provider {
	t.Helper()
	p, err := c.Provider(context.Background())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return p
}

// login runs a code flow at op as b says: the authorization request with
// a fresh nonce and PKCE, then the token exchange through the Client. It
// returns the ID token, the token response and the nonce sent.
func login(t *testing.T, c *oidcrp.Client, p *oidcrp.Provider, op *hostileop.OP, b hostileop.Behavior) (string, *oauth2.Token, string) {
	t.Helper()
	op.Set(b)
	t.Cleanup(func() { op.Set(hostileop.Behavior{}) })
	oc := &oauth2.Config{ClientID: hostileop.ClientID, ClientSecret: "x", Endpoint: p.Endpoint(),
		RedirectURL: "http://127.0.0.1/callback", Scopes: []string{"openid", "email"}}
	nonce, verifier := randomHex(t), oauth2.GenerateVerifier()
	nr := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := nr.Get(oc.AuthCodeURL("state", oauth2.SetAuthURLParam("nonce", nonce), oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.HTTPClient())
	tok, err := oc.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token")
	}
	return raw, tok, nonce
}

// wantReason fails unless err is an *oidcrp.Error with reason want ("" for
// no error).
func wantReason(t *testing.T, err error, want oidcrp.Reason) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var e *oidcrp.Error
	if !errors.As(err, &e) || e.Reason != want {
		t.Fatalf("error %v, want reason %q", err, want)
	}
}
