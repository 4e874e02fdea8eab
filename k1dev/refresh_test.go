package k1dev_test

import (
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
)

// loginOffline runs a code flow with offline_access and returns the tokens.
func loginOffline(t *testing.T, e *env, user, company, password string) *oauth2.Token {
	t.Helper()
	e.conf.Scopes = []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}
	f := newFlow()
	resp, err := e.k1.Login(k1devtest.NewClient(), e.authURL(f), user, company, password)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	tok, _, _ := e.exchange(t, e.callback(t, resp, f), f)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	return tok
}

func refresh(e *env, rt string) (*oauth2.Token, error) {
	return e.conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: rt}).Token()
}

func TestRefreshAndDisableUser(t *testing.T) {
	e := newEnv(t, true)
	alice := loginOffline(t, e, "alice", "Acme MSP", "alice-pass")
	bob := loginOffline(t, e, "bob", "Acme MSP", "bob-pass")

	// A refresh grant works and rotates the token; the old one is spent.
	next, err := refresh(e, alice.RefreshToken)
	if err != nil || next.RefreshToken == "" || next.RefreshToken == alice.RefreshToken {
		t.Fatalf("refresh: %v (rotated: %v)", err, next != nil && next.RefreshToken != alice.RefreshToken)
	}
	if _, err := refresh(e, alice.RefreshToken); !isInvalidGrant(err) {
		t.Fatalf("spent refresh token: %v, want invalid_grant", err)
	}

	// Disabled at POST /dev/disable-user: refresh and userinfo refuse alice.
	resp, err := http.PostForm(e.k1.URL+"/dev/disable-user", url.Values{"username": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/dev/disable-user: %d", resp.StatusCode)
	}
	if _, err := refresh(e, next.RefreshToken); !isInvalidGrant(err) {
		t.Fatalf("refresh of a disabled user: %v, want invalid_grant", err)
	}
	if _, err := e.prov.UserInfo(e.ctx, oauth2.StaticTokenSource(next)); err == nil {
		t.Fatal("userinfo of a disabled user answered")
	}
	// Bob is untouched.
	if _, err := refresh(e, bob.RefreshToken); err != nil {
		t.Fatalf("refresh of an enabled user: %v", err)
	}
	if _, err := e.prov.UserInfo(e.ctx, oauth2.StaticTokenSource(bob)); err != nil {
		t.Fatalf("userinfo of an enabled user: %v", err)
	}
	// A disabled user cannot sign in again.
	f := newFlow()
	if _, err := e.k1.Login(k1devtest.NewClient(), e.authURL(f), "alice", "Acme MSP", "alice-pass"); err == nil {
		t.Fatal("a disabled user signed in")
	}
}

func TestRefreshEndsWithK1Session(t *testing.T) {
	e := newEnv(t, true)
	tok := loginOffline(t, e, "alice", "Acme MSP", "alice-pass")
	e.k1.Server.EndSessions("alice")
	if _, err := refresh(e, tok.RefreshToken); !isInvalidGrant(err) {
		t.Fatalf("refresh after the K1 session ended: %v, want invalid_grant", err)
	}
}

func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}
