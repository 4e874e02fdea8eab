package k1dev_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
)

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
