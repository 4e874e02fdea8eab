package k1dev_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

// A relying party's view of k1dev: env wires an oauth2/go-oidc client to
// one k1dev and an in-test RP, with the browser steps of the code flow.

// env is one k1dev with one RP.
type env struct {
	k1   *k1devtest.Instance
	rp   *rp
	prov *oidc.Provider
	conf *oauth2.Config
	ctx  context.Context
}

// newEnv starts an RP and a k1dev; with moveClient the bms-proxy client is
// re-registered on the RP's origin (SetClientBaseURL), else it keeps the
// default localhost:8080 URIs and relies on the loopback rules.
func newEnv(t *testing.T, moveClient bool) *env {
	t.Helper()
	r := newRP(t)
	cfg := k1dev.DefaultConfig()
	if moveClient {
		cfg.SetClientBaseURL("bms-proxy", r.URL)
	}
	return newEnvWith(t, k1devtest.Start(t, cfg), r)
}

// newEnvWith wires an oauth2/go-oidc client to a running k1dev and RP.
func newEnvWith(t *testing.T, k1 *k1devtest.Instance, r *rp) *env {
	t.Helper()
	ctx := context.Background()
	prov, err := oidc.NewProvider(ctx, k1.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return &env{k1: k1, rp: r, prov: prov, ctx: ctx, conf: &oauth2.Config{
		ClientID:     "bms-proxy",
		ClientSecret: "bms-proxy-secret",
		Endpoint:     prov.Endpoint(),
		RedirectURL:  r.URL + "/.k1sso/callback",
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
	}}
}

// authURL builds an authorization URL with PKCE S256 and a nonce.
func (e *env) authURL(f flow, extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.verifier), oidc.Nonce(f.nonce)}, extra...)
	return e.conf.AuthCodeURL(f.state, opts...)
}

// callback returns the code from a response that ended at the RP callback.
func (e *env) callback(t *testing.T, resp *http.Response, f flow) string {
	t.Helper()
	defer resp.Body.Close()
	u := resp.Request.URL
	if !strings.HasPrefix(u.String(), e.conf.RedirectURL) {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("ended at %s (status %d), not the callback: %.300s", u, resp.StatusCode, body)
	}
	q := u.Query()
	if q.Get("state") != f.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), f.state)
	}
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("callback without code: %s", u.RawQuery)
	}
	return q.Get("code")
}

// exchange redeems code and verifies the ID token with go-oidc.
func (e *env) exchange(t *testing.T, code string, f flow, opts ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken, string) {
	t.Helper()
	tok, err := e.conf.Exchange(e.ctx, code, append([]oauth2.AuthCodeOption{oauth2.VerifierOption(f.verifier)}, opts...)...)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := e.prov.Verifier(&oidc.Config{ClientID: "bms-proxy"}).Verify(e.ctx, raw)
	if err != nil {
		t.Fatalf("verifying ID token: %v", err)
	}
	if idt.Nonce != f.nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, f.nonce)
	}
	return tok, idt, raw
}

// login runs a full code flow for alice with a fresh browser and returns
// the browser and the verified ID token.
func (e *env) login(t *testing.T, user, company, password string) (*http.Client, *oidc.IDToken, string) {
	t.Helper()
	c := k1devtest.NewClient()
	f := newFlow()
	resp, err := e.k1.Login(c, e.authURL(f), user, company, password)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	_, idt, raw := e.exchange(t, e.callback(t, resp, f), f)
	return c, idt, raw
}

// flow is one authorization request in progress.
type flow struct {
	state, nonce, verifier string
}

func newFlow() flow {
	return flow{state: randString(), nonce: randString(), verifier: oauth2.GenerateVerifier()}
}

func randString() string { return oauth2.GenerateVerifier()[:20] }

// rp is a relying party stand-in: the bms-proxy client on a free port.
type rp struct {
	*httptest.Server
	mu           sync.Mutex
	logoutTokens []string // back-channel logout tokens received
	frontchannel []url.Values
}

// newRP starts an RP on 127.0.0.1 that answers its callback with 200 and
// records back-channel logout tokens.
func newRP(t *testing.T) *rp {
	t.Helper()
	r := &rp{}
	mux := http.NewServeMux()
	mux.HandleFunc("/.k1sso/callback", func(w http.ResponseWriter, req *http.Request) {
		fmt.Fprintln(w, "callback")
	})
	mux.HandleFunc("POST /.k1sso/backchannel-logout", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.logoutTokens = append(r.logoutTokens, req.PostFormValue("logout_token"))
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("/.k1sso/frontchannel-logout", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.frontchannel = append(r.frontchannel, req.URL.Query())
		r.mu.Unlock()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) { fmt.Fprintln(w, "rp page") })
	r.Server = httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(r.Close)
	return r
}

func (r *rp) tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logoutTokens...)
}

type idClaims struct {
	Sub           string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Company       string   `json:"k1_company"`
	SID           string   `json:"sid"`
	AMR           []string `json:"amr"`
	AuthTime      int64    `json:"auth_time"`
	Nonce         string   `json:"nonce"`
}

func claimsOf(t *testing.T, idt *oidc.IDToken) idClaims {
	t.Helper()
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return c
}

// logoutClaims are the claims a logout token must (not) have.
type logoutClaims struct {
	Sub    string                     `json:"sub"`
	SID    string                     `json:"sid"`
	JTI    string                     `json:"jti"`
	Nonce  *string                    `json:"nonce"`
	Events map[string]json.RawMessage `json:"events"`
}

// verifyLogoutToken checks raw with go-oidc against k1dev's JWKS, with the
// client id check on.
func verifyLogoutToken(t *testing.T, e *env, raw string) logoutClaims {
	t.Helper()
	ctx := context.Background()
	var doc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := e.prov.Claims(&doc); err != nil {
		t.Fatal(err)
	}
	v := oidc.NewVerifier(e.k1.URL, oidc.NewRemoteKeySet(ctx, doc.JWKS), &oidc.Config{ClientID: "bms-proxy", SkipClientIDCheck: false})
	lt, err := v.VerifyLogout(ctx, raw)
	if err != nil {
		t.Fatalf("verifying logout token: %v", err)
	}
	var c logoutClaims
	if err := lt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if _, err := oidc.NewVerifier(e.k1.URL, oidc.NewRemoteKeySet(ctx, doc.JWKS), &oidc.Config{ClientID: "other-client"}).VerifyLogout(ctx, raw); err == nil {
		t.Error("logout token verified for another client id")
	}
	if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok {
		t.Errorf("events = %v", c.Events)
	}
	if c.Nonce != nil {
		t.Error("logout token has a nonce")
	}
	if c.JTI == "" {
		t.Error("logout token has no jti")
	}
	return c
}

// Requests.

// get fetches u and returns status, Location and body.
func get(t *testing.T, c *http.Client, u string) (int, string, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func fetch(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = c.PostForm(u, form)
	} else {
		resp, err = c.Get(u)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// noFollow returns a copy of c (same cookies) that stops at redirects.
func noFollow(c *http.Client) *http.Client {
	n := *c
	n.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &n
}

// loggedIn reports whether c has a K1 session (K1's home page shows).
func loggedIn(t *testing.T, e *env, c *http.Client) bool {
	t.Helper()
	status, loc, _ := get(t, noFollow(c), e.k1.URL+"/")
	return status == http.StatusOK && loc == ""
}

func resolveRef(base, ref string) string {
	b, _ := url.Parse(base)
	r, err := b.Parse(ref)
	if err != nil {
		return ref
	}
	return r.String()
}
