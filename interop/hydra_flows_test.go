package interop

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// hydraLogin starts a login at the proxy (rd=path) and signs in at our
// login app for Hydra unless Hydra remembers the user; it returns the
// final answer, which is the upstream's when all went well.
func hydraLogin(t *testing.T, c *http.Client, h *hydraOP, px *proxy, path string) *http.Response {
	t.Helper()
	resp := get(t, c, px.URL+"/.k1sso/login?rd="+url.QueryEscape(path))
	if hostOf(resp.Request.URL.String()) == hostOf(h.app.URL) && resp.Request.URL.Path == "/login" {
		resp = submitForm(t, c, resp, "username", url.Values{"username": {hydraUser}, "password": {hydraPassword}})
	}
	if hostOf(resp.Request.URL.String()) != hostOf(px.URL) || resp.StatusCode != http.StatusOK {
		t.Fatalf("login through hydra ended at %s: %.600s", describe(resp), readBody(t, resp))
	}
	return resp
}

// hydraProxy starts Hydra (once per package), a proxy whose issuer is
// exactly the one Hydra publishes, and registers the proxy's client.
func hydraProxy(t *testing.T) (*hydraOP, *proxy) {
	t.Helper()
	h := startHydra(t)
	iss := publishedIssuer(t, h.Issuer+".well-known/openid-configuration")
	if iss != h.Issuer || !strings.HasSuffix(iss, "/") {
		t.Fatalf("hydra publishes issuer %q, want %q (with its trailing /)", iss, h.Issuer)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, iss, hydraEmail, port)
	h.registerClient(t, px.URL)
	return h, px
}

// TestHydraDiscovery checks the harness without k1sso: a plain go-oidc
// client accepts Hydra's discovery document with the issuer spelt as Hydra
// publishes it, and Hydra's keys are RSA (RS256), its default.
func TestHydraDiscovery(t *testing.T) {
	h := startHydra(t)
	p, err := oidc.NewProvider(context.Background(), h.Issuer)
	if err != nil {
		t.Fatalf("go-oidc refuses hydra's discovery: %v", err)
	}
	var d struct {
		Algs               []string `json:"id_token_signing_alg_values_supported"`
		EndSession         string   `json:"end_session_endpoint"`
		BackchannelLogout  bool     `json:"backchannel_logout_supported"`
		BackchannelSession bool     `json:"backchannel_logout_session_supported"`
	}
	if err := p.Claims(&d); err != nil {
		t.Fatal(err)
	}
	if len(d.Algs) == 0 || d.Algs[0] != "RS256" || d.EndSession == "" || !d.BackchannelLogout || !d.BackchannelSession {
		t.Fatalf("hydra's discovery: %+v", d)
	}
}

// TestHydraPlainClient checks the harness without k1sso: a login with
// go-oidc and x/oauth2 alone gets an RS256 ID token from Hydra with the
// claims our consent app put in and Hydra's own (sid, amr, auth_time).
func TestHydraPlainClient(t *testing.T) {
	h := startHydra(t)
	ctx := context.Background()
	p, err := oidc.NewProvider(ctx, h.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 1)
	rp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer rp.Close()
	h.registerClient(t, rp.URL)
	cfg := oauth2.Config{ClientID: "bms-proxy", ClientSecret: "bms-proxy-secret", Endpoint: p.Endpoint(),
		RedirectURL: rp.URL + "/.k1sso/callback", Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
	c := newBrowser()
	resp := get(t, c, cfg.AuthCodeURL("state-0123456789", oidc.Nonce("nonce-0123456789")))
	readBody(t, submitForm(t, c, resp, "username", url.Values{"username": {hydraUser}, "password": {hydraPassword}}))
	var code string
	select {
	case code = <-codes:
	default:
		t.Fatal("hydra never redirected to the client with a code")
	}
	tok, err := cfg.Exchange(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := p.Verifier(&oidc.Config{ClientID: "bms-proxy", SupportedSigningAlgs: []string{oidc.RS256}}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("hydra's ID token: %v", err)
	}
	var claims struct {
		Email         string   `json:"email"`
		EmailVerified bool     `json:"email_verified"`
		SID           string   `json:"sid"`
		AMR           []string `json:"amr"`
		AuthTime      int64    `json:"auth_time"`
		Nonce         string   `json:"nonce"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != hydraSubject || claims.Email != hydraEmail || !claims.EmailVerified || claims.SID == "" ||
		len(claims.AMR) != 1 || claims.AMR[0] != "pwd" || claims.AuthTime == 0 || claims.Nonce != "nonce-0123456789" {
		t.Fatalf("hydra's ID token: sub %q, claims %+v", idt.Subject, claims)
	}
}

// TestHydraLogin: a login through the real Caddy against Hydra, with the
// issuer exactly as Hydra publishes it ("/" at the end), reaches the
// upstream with the identity of the email in Hydra's ID token.
func TestHydraLogin(t *testing.T) {
	h, px := hydraProxy(t)
	c := newBrowser()
	resp := hydraLogin(t, c, h, px, "/after-login?x=1")
	checkIdentity(t, resp, "/after-login?x=1", hydraEmail, hydraSubject)

	// The session holds: a second request goes straight to the upstream.
	px.up.Reset()
	checkIdentity(t, get(t, c, px.URL+"/tickets"), "/tickets", hydraEmail, hydraSubject)
}

// TestHydraRPInitiatedLogout: BMS's logout through the proxy ends the
// proxy session and takes the browser to Hydra's end_session endpoint
// (Hydra asks our logout app, as the RP's logout of this client and
// subject), and Hydra sends it back to the proxy's login page.
func TestHydraRPInitiatedLogout(t *testing.T) {
	h, px := hydraProxy(t)
	c := newBrowser()
	readBody(t, hydraLogin(t, c, h, px, "/"))
	if status, email := whoami(t, c, px); status != http.StatusOK || email != hydraEmail {
		t.Fatalf("whoami after login: %d %q", status, email)
	}

	resp := get(t, c, px.URL+"/logout")
	if hostOf(resp.Request.URL.String()) != hostOf(px.URL) || resp.Request.URL.Path != "/login" || resp.Request.URL.Query().Get("state") == "" {
		t.Fatalf("logout ended at %s, want the proxy's /login with Hydra's state: %.300s", describe(resp), readBody(t, resp))
	}
	readBody(t, resp)
	lo := h.app.Logouts()
	if len(lo) != 1 || !lo[0].RPInitiated || lo[0].Subject != hydraSubject || lo[0].Client == nil || lo[0].Client.ClientID != "bms-proxy" {
		t.Fatalf("hydra's logout requests: %+v; want one RP-initiated logout of %s by bms-proxy", lo, hydraSubject)
	}
	if status, _ := whoami(t, c, px); status != http.StatusUnauthorized {
		t.Fatalf("whoami after logout: %d, want 401", status)
	}
	// Hydra also sends its logout token to the client that logged out;
	// let it arrive before the proxy stops.
	waitRelayed(h)
	// BMS saw its logout as the user.
	var sawLogout bool
	for _, s := range px.up.Requests() {
		if s.Path == "/logout" && s.Header.Get("X-Bms-User") == bmsUser {
			sawLogout = true
		}
	}
	if !sawLogout {
		t.Error("upstream never got /logout with the user's identity")
	}
}

// TestHydraBackChannelLogout: a logout at Hydra itself (not through the
// proxy) makes Hydra POST a logout token to the proxy's back-channel logout
// URI, and the proxy session ends though the browser keeps its cookie.
func TestHydraBackChannelLogout(t *testing.T) {
	h, px := hydraProxy(t)
	c := newBrowser()
	readBody(t, hydraLogin(t, c, h, px, "/"))
	if status, email := whoami(t, c, px); status != http.StatusOK || email != hydraEmail {
		t.Fatalf("whoami after login: %d %q", status, email)
	}

	// OP-initiated logout: the browser goes to Hydra's logout endpoint
	// without an id_token_hint; Hydra's session cookie names the session.
	resp := get(t, c, h.Issuer+"oauth2/sessions/logout")
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || hostOf(resp.Request.URL.String()) != hostOf(h.Issuer) {
		t.Fatalf("logout at hydra ended at %s: %.300s", describe(resp), body)
	}
	lo := h.app.Logouts()
	if len(lo) != 1 || lo[0].RPInitiated || lo[0].Subject != hydraSubject {
		t.Fatalf("hydra's logout requests: %+v; want one logout of %s at the OP", lo, hydraSubject)
	}
	bc := waitRelayed(h)
	if len(bc) != 1 {
		t.Fatalf("hydra sent %d back-channel logouts, want 1", len(bc))
	}
	if bc[0].Status != http.StatusOK {
		t.Fatalf("the proxy answered hydra's logout token (claims %v) with %d %s", bc[0].Claims, bc[0].Status, bc[0].Answer)
	}
	waitSignedOut(t, c, px)

	// The upstream gets no identity from the old cookie.
	px.up.Reset()
	resp = get(t, c, px.URL+"/tickets")
	s := readSeen(t, resp)
	if s.Header.Get("X-Bms-User") != "" {
		t.Fatalf("after the back-channel logout the upstream still got X-BMS-User %q", s.Header.Get("X-Bms-User"))
	}
}

// waitRelayed waits (up to 10 s) for Hydra's first back-channel logout
// and returns those relayed so far.
func waitRelayed(h *hydraOP) []relayed {
	deadline := time.Now().Add(10 * time.Second)
	for {
		bc := h.app.Relayed()
		if len(bc) > 0 || time.Now().After(deadline) {
			return bc
		}
		time.Sleep(50 * time.Millisecond)
	}
}
