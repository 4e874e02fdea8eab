package k1dev_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

func TestBackchannelLogout(t *testing.T) {
	// The client keeps its localhost:8080 registration; the RP runs on
	// another loopback port, so the token must go to the RP's origin.
	e := newEnv(t, false)
	_, idt, _ := e.login(t, "alice", "Acme MSP", "alice-pass")
	sid := claimsOf(t, idt).SID
	if len(e.rp.tokens()) != 0 {
		t.Fatal("logout token before logout")
	}
	e.k1.Server.EndSessions("alice")
	tokens := e.rp.tokens()
	if len(tokens) != 1 {
		t.Fatalf("got %d logout tokens, want 1", len(tokens))
	}
	c := verifyLogoutToken(t, e, tokens[0])
	if c.Sub != "k1|alice" || c.SID != sid {
		t.Errorf("logout token sub=%q sid=%q, want k1|alice and %q", c.Sub, c.SID, sid)
	}

	// K1's own /logout link sends one too, with a fresh jti.
	c2, _, _ := e.login(t, "alice", "Acme MSP", "alice-pass")
	status, _, body := get(t, c2, e.k1.URL+"/logout")
	if status != http.StatusOK || !strings.Contains(body, "logged out") {
		t.Fatalf("/logout: %d %.200s", status, body)
	}
	tokens = e.rp.tokens()
	if len(tokens) != 2 {
		t.Fatalf("got %d logout tokens after /logout, want 2", len(tokens))
	}
	if verifyLogoutToken(t, e, tokens[1]).JTI == c.JTI {
		t.Error("jti reused")
	}
	if loggedIn(t, e, c2) {
		t.Error("still logged in at K1 after /logout")
	}
}

func TestEndSession(t *testing.T) {
	e := newEnv(t, true)
	c, idt, raw := e.login(t, "alice", "Acme MSP", "alice-pass")
	endSession := func(postLogout, state string) string {
		q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {postLogout}}
		if state != "" {
			q.Set("state", state)
		}
		return e.k1.URL + "/end_session?" + q.Encode()
	}

	// Unregistered post_logout_redirect_uri: an error, no redirect, no logout.
	for _, bad := range []string{"http://evil.example/login", e.rp.URL + "/elsewhere", "http://127.0.0.1:1@evil.example/login"} {
		status, loc, _ := get(t, noFollow(c), endSession(bad, "s1"))
		if status < 400 || status >= 500 || loc != "" {
			t.Errorf("post_logout_redirect_uri %s: status %d, Location %q", bad, status, loc)
		}
	}
	if !loggedIn(t, e, c) || len(e.rp.tokens()) != 0 {
		t.Fatal("a refused end_session ended the session")
	}

	// Registered: session ended, back-channel sent, front-channel iframe,
	// and on to the post-logout URI with state.
	status, loc, _ := get(t, noFollow(c), endSession(e.rp.URL+"/login", "xyz"))
	if status != http.StatusFound {
		t.Fatalf("end_session: status %d", status)
	}
	if len(e.rp.tokens()) != 1 {
		t.Fatalf("got %d logout tokens, want 1", len(e.rp.tokens()))
	}
	status, _, body := get(t, c, resolveRef(e.k1.URL, loc))
	if status != http.StatusOK {
		t.Fatalf("logged-out page: %d", status)
	}
	wantFrame := e.rp.URL + "/.k1sso/frontchannel-logout?" + url.Values{"iss": {e.k1.URL}, "sid": {claimsOf(t, idt).SID}}.Encode()
	if !strings.Contains(body, `src="`+htmlEscape(wantFrame)+`"`) {
		t.Errorf("no front-channel iframe %s in %.600s", wantFrame, body)
	}
	if !strings.Contains(body, `id="continue" href="`+htmlEscape(e.rp.URL+"/login?state=xyz")+`"`) {
		t.Errorf("no continue link with state in %.600s", body)
	}
	if loggedIn(t, e, c) {
		t.Error("K1 session survived end_session")
	}
	f := newFlow()
	resp, err := c.Get(e.authURL(f, oauth2.SetAuthURLParam("prompt", "none")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Query().Get("error") != "login_required" {
		t.Errorf("prompt=none after logout ended at %s", resp.Request.URL)
	}
}

func TestEndSessionWithoutFrontchannelRedirects(t *testing.T) {
	cfg := k1dev.DefaultConfig()
	r := newRP(t)
	cfg.SetClientBaseURL("bms-proxy", r.URL)
	cfg.Clients[0].FrontchannelLogoutURI = ""
	k1 := k1devtest.Start(t, cfg)
	e := newEnvWith(t, k1, r)
	c, _, raw := e.login(t, "bob", "Acme MSP", "bob-pass")
	q := url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {r.URL + "/"}, "state": {"abc"}}
	status, loc, _ := get(t, noFollow(c), k1.URL+"/end_session?"+q.Encode())
	if status != http.StatusFound || loc != r.URL+"/?state=abc" {
		t.Fatalf("end_session: %d %q", status, loc)
	}
}

func htmlEscape(s string) string { return strings.ReplaceAll(s, "&", "&amp;") }
