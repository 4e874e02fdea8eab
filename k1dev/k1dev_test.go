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
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

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

// flow is one authorization request in progress.
type flow struct {
	state, nonce, verifier string
}

func newFlow() flow {
	return flow{state: randString(), nonce: randString(), verifier: oauth2.GenerateVerifier()}
}

func randString() string { return oauth2.GenerateVerifier()[:20] }

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

// noFollow returns a copy of c (same cookies) that stops at redirects.
func noFollow(c *http.Client) *http.Client {
	n := *c
	n.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &n
}

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

func TestDiscovery(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	_, _, body := get(t, http.DefaultClient, k1.URL+"/.well-known/openid-configuration")
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("decoding discovery: %v", err)
	}
	for key, want := range map[string]any{
		"issuer":                                k1.URL,
		"end_session_endpoint":                  k1.URL + "/end_session",
		"backchannel_logout_supported":          true,
		"backchannel_logout_session_supported":  true,
		"frontchannel_logout_supported":         true,
		"frontchannel_logout_session_supported": true,
	} {
		if doc[key] != want {
			t.Errorf("%s = %v, want %v", key, doc[key], want)
		}
	}
	for key, want := range map[string]string{
		"code_challenge_methods_supported":      "S256",
		"id_token_signing_alg_values_supported": "RS256",
		"token_endpoint_auth_methods_supported": "client_secret_post",
	} {
		list, _ := doc[key].([]any)
		found := false
		for _, v := range list {
			found = found || v == want
		}
		if !found {
			t.Errorf("%s = %v, want it to include %s", key, doc[key], want)
		}
	}
	for _, key := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"} {
		if s, _ := doc[key].(string); !strings.HasPrefix(s, k1.URL+"/") {
			t.Errorf("%s = %v", key, doc[key])
		}
	}
}

func TestCodeFlowPKCE(t *testing.T) {
	e := newEnv(t, true)
	c := k1devtest.NewClient()
	f := newFlow()
	before := time.Now().Add(-time.Second).Unix()
	resp, err := e.k1.Login(c, e.authURL(f), "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	code := e.callback(t, resp, f)

	// PKCE is enforced: the wrong verifier is refused (and the code survives
	// only a failed attempt before a good one in this implementation).
	if _, err := e.conf.Exchange(e.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Fatal("exchange with a wrong code_verifier succeeded")
	}
	tok, idt, _ := e.exchange(t, code, f)
	cl := claimsOf(t, idt)
	want := idClaims{Sub: "k1|alice", Email: "alice@acme.example", EmailVerified: true, Name: "Alice Admin", Company: "Acme MSP", Nonce: f.nonce}
	if cl.Sub != want.Sub || cl.Email != want.Email || !cl.EmailVerified || cl.Name != want.Name || cl.Company != want.Company || cl.Nonce != want.Nonce {
		t.Errorf("claims = %+v, want %+v", cl, want)
	}
	if cl.SID == "" {
		t.Error("no sid claim")
	}
	if strings.Join(cl.AMR, ",") != "pwd,otp" {
		t.Errorf("amr = %v, want [pwd otp]", cl.AMR)
	}
	if cl.AuthTime < before || cl.AuthTime > time.Now().Unix()+1 {
		t.Errorf("auth_time = %d, want about now", cl.AuthTime)
	}
	if len(idt.Audience) != 1 || idt.Audience[0] != "bms-proxy" {
		t.Errorf("aud = %v", idt.Audience)
	}

	// A code is usable once.
	if _, err := e.conf.Exchange(e.ctx, code, oauth2.VerifierOption(f.verifier)); err == nil {
		t.Error("second exchange of the same code succeeded")
	}

	// userinfo with the access token.
	ui, err := e.prov.UserInfo(e.ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	if ui.Subject != "k1|alice" || ui.Email != "alice@acme.example" {
		t.Errorf("userinfo = %+v", ui)
	}

	// client_secret_post works as well as client_secret_basic.
	post := *e.conf
	post.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	f2 := newFlow()
	resp, err = e.k1.Login(c, e.authURL(f2), "alice", "Acme MSP", "alice-pass") // live session: no form
	if err != nil {
		t.Fatalf("second login: %v", err)
	}
	code2 := e.callback(t, resp, f2)
	if _, err := post.Exchange(e.ctx, code2, oauth2.VerifierOption(f2.verifier)); err != nil {
		t.Fatalf("exchange with client_secret_post: %v", err)
	}

	// A wrong client secret is refused.
	bad := *e.conf
	bad.ClientSecret = "wrong"
	f3 := newFlow()
	resp, err = e.k1.Login(c, e.authURL(f3), "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatalf("third login: %v", err)
	}
	if _, err := bad.Exchange(e.ctx, e.callback(t, resp, f3), oauth2.VerifierOption(f3.verifier)); err == nil {
		t.Error("exchange with a wrong client secret succeeded")
	}
}
