package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
)

// testUsers is the directory of the handler tests: bob has one tenant,
// alice two (so her session needs the picker).
const testUsers = "email,bms_user,tenant,tenant_name,roles\n" +
	"alice@acme.example,alice,acme,Acme,admin\n" +
	"alice@acme.example,alice.labs,acme-labs,Acme Labs,admin\n" +
	"bob@acme.example,bob,acme,Acme,\n"

// testEndSession is the end_session_endpoint of testOP's discovery.
const testEndSession = "https://k1.example/logout"

// testDirectory is a directory of csv that no file backs.
func testDirectory(t *testing.T, csv string) *directory {
	t.Helper()
	data, err := parseUsers(strings.NewReader(csv), 1)
	if err != nil {
		t.Fatal(err)
	}
	d := &directory{logger: zap.NewNop(), stop: make(chan struct{})}
	d.data.Store(data)
	return d
}

// testOP is an in-test OP that serves only its discovery document, with
// testEndSession: the handler tests verify no token and sign nobody in at
// K1, they only need K1's endpoints. It returns the issuer.
func testOP(t *testing.T) string {
	t.Helper()
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "authorization_endpoint": issuer + "/authorize",
			"token_endpoint": issuer + "/token", "jwks_uri": issuer + "/jwks", "end_session_endpoint": testEndSession})
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	return issuer
}

// newTestHandler is a provisioned handler (enforce, recheck off) of
// testOP over a pooled state assembled from in-test parts: testUsers, a
// caddy store on a temp folder and a fresh signer, in sync with the store
// and started. configure changes the options before they are provisioned.
// No Caddy runs and the state starts no goroutine.
func newTestHandler(t *testing.T, configure func(*Handler)) *Handler {
	t.Helper()
	return newTestHandlerAt(t, nil, configure)
}

// newTestHandlerAt is newTestHandler on the clock clock (nil: clockNow).
func newTestHandlerAt(t *testing.T, clock func() time.Time, configure func(*Handler)) *Handler {
	t.Helper()
	h := &Handler{Issuer: testOP(t), ClientID: "bms", ClientSecret: "bms-secret",
		CookieSecrets: []string{strings.Repeat("s", 32)}, Users: "users.csv", Enforce: true}
	h.RecheckInterval = -1
	if configure != nil {
		configure(h)
	}
	cfg, err := h.buildConfig()
	if err != nil {
		t.Fatal(err)
	}
	h.cfg, h.logger = cfg, zap.NewNop()
	if h.public, err = newPathMatcher(h.Public); err != nil {
		t.Fatal(err)
	}
	signer, _ := testSigner(t)
	st := caddystore.New(&certmagic.FileStorage{Path: t.TempDir()},
		store.Options{Namespace: storeNamespace(cfg.issuerURL(), cfg.clientID), Now: clockNow, Expiring: sweptFolders})
	s := assembleShared(cfg, sharedParts{dir: testDirectory(t, testUsers), store: st, signer: signer, clock: clock}, zap.NewNop())
	t.Cleanup(func() { _ = s.Destruct() })
	// What start (app.go) does, without loading from the store: the set is
	// complete (nothing else writes the store) until long after the test.
	s.revocations.Synced(time.Now().Add(time.Hour))
	s.running.Store(true)
	h.shared = s
	for _, err := range []error{h.provisionIntegration(), h.provisionLaunch(caddy.Context{}), h.provisionRecheck(),
		h.provisionLifecycle(), h.provisionLogout(caddy.Context{})} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// testSession is a fresh session of a K1 user; tenant "" is one that has
// not picked a tenant yet.
func testSession(user, tenant string) *session {
	now := time.Now()
	return &session{ID: randomID(18), Subject: "k1|" + user, Email: user + "@acme.example", Name: user,
		SID: randomID(12), Company: "Acme MSP", Tenant: tenant, IDToken: "id-token-of-" + user,
		AuthTime: now.Unix(), Issued: now.Unix(), Expires: now.Add(8 * time.Hour).Unix()}
}

// sessionCookies is the Cookie header of a browser holding sess.
func sessionCookies(t *testing.T, h *Handler, sess *session) string {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := h.shared.writeSession(rec, httptest.NewRequest(http.MethodGet, "/", nil), sess, false); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, c := range rec.Result().Cookies() {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// recordingNext is the handler after k1sso: it remembers the request it
// got (nil: never called) and answers 200.
type recordingNext struct{ got *http.Request }

func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.got = r.Clone(r.Context())
	w.Header().Set("Content-Type", "text/plain")
	_, err := w.Write([]byte("upstream"))
	return err
}
