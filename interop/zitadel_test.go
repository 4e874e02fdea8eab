package interop

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// zitadelOP is zitadel/oidc's example OP (example/server: its op
// configuration, login page, in-memory storage and users), served on
// 127.0.0.1 in this process. Its issuer ends in "/" as the example's does
// (http://localhost:9998/); it signs ID tokens with RS256 and puts the
// email only into userinfo, not into the ID token.
type zitadelOP struct {
	Issuer string
	// User, Password and Email are the example's first user
	// (test-user@<issuer host>, verysecure, test-user@zitadel.ch).
	User, Password, Email, Subject string
}

// zitadelEndSessions counts the OP's end_session requests.
type endSessionCounter struct {
	next http.Handler
	hits chan url.Values
}

func (e *endSessionCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/end_session" {
		_ = r.ParseForm()
		select {
		case e.hits <- r.Form:
		default:
		}
	}
	e.next.ServeHTTP(w, r)
}

// startZitadel runs the example OP with a client for the proxy at base
// (bms-proxy, as testenv's sites use, with the example's own WebClient
// settings). It returns the OP and a channel of its end_session requests.
func startZitadel(t *testing.T, base string) (*zitadelOP, <-chan url.Values) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := fmt.Sprintf("http://%s/", l.Addr())
	users := storage.NewUserStore(issuer)
	client := storage.WebClient("bms-proxy", "bms-proxy-secret", base+"/.k1sso/callback")
	st := &zitadelStorage{
		Storage:    storage.NewStorageWithClients(users, map[string]*storage.Client{"bms-proxy": client}),
		postLogout: []string{base + "/login"},
	}
	// nil logger: the example would otherwise replace the process's slog
	// default.
	router := exampleop.SetupServer(issuer, st, nil, false)
	hits := make(chan url.Values, 8)
	srv := &http.Server{Handler: &endSessionCounter{next: router, hits: hits}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	u := users.GetUserByID("id1")
	return &zitadelOP{Issuer: issuer, User: u.Username, Password: u.Password, Email: u.Email, Subject: u.ID}, hits
}

// zitadelStorage is the example's storage; only the client gains the
// proxy's post-logout redirect URI (the example's clients register none,
// so its end_session refuses any post_logout_redirect_uri).
type zitadelStorage struct {
	*storage.Storage
	postLogout []string
}

// GetClientByClientID is the example's client with the proxy's
// post-logout redirect URI.
func (s *zitadelStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return postLogoutClient{Client: c, uris: s.postLogout}, nil
}

type postLogoutClient struct {
	op.Client
	uris []string
}

func (c postLogoutClient) PostLogoutRedirectURIs() []string { return c.uris }

// zitadelSetup starts the proxy and the example OP for it.
func zitadelSetup(t *testing.T) (*zitadelOP, <-chan url.Values, *proxy, *http.Client) {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	zop, hits := startZitadel(t, fmt.Sprintf("http://127.0.0.1:%d", port))
	iss := publishedIssuer(t, zop.Issuer+".well-known/openid-configuration")
	if iss != zop.Issuer || !strings.HasSuffix(iss, "/") {
		t.Fatalf("the example OP publishes issuer %q, want %q", iss, zop.Issuer)
	}
	px := startProxy(t, iss, zop.Email, port)
	c := newBrowser()
	resp := get(t, c, px.URL+"/.k1sso/login?rd="+url.QueryEscape("/after-login"))
	if hostOf(resp.Request.URL.String()) != hostOf(zop.Issuer) {
		t.Fatalf("login did not reach the example OP's login page: %s: %.600s", describe(resp), readBody(t, resp))
	}
	resp = submitForm(t, c, resp, "username", url.Values{"username": {zop.User}, "password": {zop.Password}})
	if hostOf(resp.Request.URL.String()) != hostOf(px.URL) || resp.StatusCode != http.StatusOK {
		t.Fatalf("login through the example OP ended at %s: %.600s", describe(resp), readBody(t, resp))
	}
	checkIdentity(t, resp, "/after-login", zop.Email, zop.Subject)
	return zop, hits, px, c
}

// TestZitadelExampleOPLogin: a login through the real Caddy against
// zitadel/oidc's example OP, with its issuer as it publishes it ("/" at the
// end), reaches the upstream with the identity; the email comes from
// userinfo, since the example's ID tokens carry none.
func TestZitadelExampleOPLogin(t *testing.T) {
	zitadelSetup(t)
}

// TestZitadelExampleOPRPInitiatedLogout: BMS's logout through the proxy
// ends the proxy session and reaches the example OP's end_session endpoint
// with the ID token as hint, which sends the browser back to the proxy's
// login page. (The example OP has no back-channel logout.)
func TestZitadelExampleOPRPInitiatedLogout(t *testing.T) {
	zop, hits, px, c := zitadelSetup(t)
	resp := get(t, c, px.URL+"/logout")
	body := readBody(t, resp)
	if hostOf(resp.Request.URL.String()) != hostOf(px.URL) || resp.Request.URL.Path != "/login" || resp.Request.URL.Query().Get("state") == "" {
		t.Fatalf("logout ended at %s, want the proxy's /login with the OP's state: %.300s", describe(resp), body)
	}
	select {
	case q := <-hits:
		if q.Get("id_token_hint") == "" || q.Get("client_id") != "bms-proxy" || q.Get("post_logout_redirect_uri") != px.URL+"/login" {
			t.Fatalf("end_session request: %v", redactHint(q))
		}
	default:
		t.Fatalf("the browser never reached %send_session", zop.Issuer)
	}
	if status, _ := whoami(t, c, px); status != http.StatusUnauthorized {
		t.Fatalf("whoami after logout: %d, want 401", status)
	}
}

// redactHint is q without the ID token, for error messages.
func redactHint(q url.Values) url.Values {
	r := url.Values{}
	for k, v := range q {
		r[k] = v
	}
	if r.Get("id_token_hint") != "" {
		r.Set("id_token_hint", "(set)")
	}
	return r
}
