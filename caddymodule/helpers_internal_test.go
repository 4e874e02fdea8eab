package caddymodule

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"
	"github.com/gorilla/securecookie"
	"go.uber.org/zap"

	"github.com/k1sso/k1sso/store"
	"github.com/k1sso/k1sso/store/caddystore"
)

// The pooled state and handlers without Caddy: one builder (testShared)
// and the handlers the tests put on it.

// testShared is the one pooled state of the tests without Caddy (the
// handler tests, the micro-benchmarks, the session and fuzz tests): cfg's
// state assembled from in-test parts by assembleShared, as start (app.go)
// leaves it but without loading from the store: no store keeps the
// revocation set in sync, so it is marked in sync until long after the
// test (else a run longer than the store grace, 5 s, would meet the 503 of
// a store out of sync), and running. It starts no goroutine.
func testShared(tb testing.TB, cfg *config, p sharedParts) *shared {
	tb.Helper()
	s := assembleShared(cfg, p, zap.NewNop())
	tb.Cleanup(func() {
		if p.store == nil {
			s.cancel()
			p.dir.close()
			return
		}
		_ = s.Destruct()
	})
	s.revocations.Synced(s.now().Add(24 * time.Hour))
	s.running.Store(true)
	return s
}

// cookieShared is a pooled state whose session cookies use secrets (the
// first signs, all verify; one fixed secret when none is given), with
// testUsers and a fresh signer, no store and no K1.
func cookieShared(tb testing.TB, secrets ...string) *shared {
	tb.Helper()
	if len(secrets) == 0 {
		secrets = []string{strings.Repeat("s", 32)}
	}
	cfg := &config{}
	for _, s := range secrets {
		cfg.cookieKeys = append(cfg.cookieKeys, []byte(s))
	}
	signer, _ := testSigner(tb)
	return testShared(tb, cfg, sharedParts{dir: testDirectory(tb, testUsers), signer: signer})
}

// benchHandler is a handler over cookieShared, with no option provisioned
// and no Caddy around it.
func benchHandler(tb testing.TB) *Handler {
	tb.Helper()
	s := cookieShared(tb)
	return &Handler{cfg: s.cfg, shared: s, externalStr: "https://bms.example", logger: zap.NewNop()}
}

// idleHandler is benchHandler with enforce on, a session lifetime of 8h
// and an idle timeout of 30m (re-issue every minute).
func idleHandler(t testing.TB) *Handler {
	h := benchHandler(t)
	h.Enforce = true
	h.cfg.lifetime = 8 * time.Hour
	h.cfg.loginPath, h.cfg.landingPage = "/login", "/"
	h.SessionIdleTimeout = caddy.Duration(30 * time.Minute)
	if err := h.provisionLifecycle(); err != nil {
		t.Fatal(err)
	}
	return h
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
	h.shared = testShared(t, cfg, sharedParts{dir: testDirectory(t, testUsers), store: st, signer: signer, clock: clock})
	for _, err := range []error{h.provisionIntegration(), h.provisionLaunch(caddy.Context{}), h.provisionRecheck(),
		h.provisionLifecycle(), h.provisionLogout(caddy.Context{})} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// Its parts: the directory, the assertion signer and an in-test K1.

// testUsers is the directory of the handler tests: bob has one tenant,
// alice two (so her session needs the picker).
const testUsers = "email,bms_user,tenant,tenant_name,roles\n" +
	"alice@acme.example,alice,acme,Acme,admin\n" +
	"alice@acme.example,alice.labs,acme-labs,Acme Labs,admin\n" +
	"bob@acme.example,bob,acme,Acme,\n"

// testDirectory is a directory of csv that no file backs.
func testDirectory(t testing.TB, csv string) *directory {
	t.Helper()
	data, err := parseUsers(strings.NewReader(csv), 1)
	if err != nil {
		t.Fatal(err)
	}
	d := &directory{logger: zap.NewNop(), stop: make(chan struct{})}
	d.data.Store(data)
	return d
}

// testSigner is an assertion signer with a fresh key and its public JWKS.
func testSigner(t testing.TB) (*assertionSigner, jose.JSONWebKeySet) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAssertionSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(a.jwks, &set); err != nil {
		t.Fatal(err)
	}
	return a, set
}

// testEndSession is the end_session_endpoint of testOP's discovery.
const testEndSession = "https://k1.example/logout"

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

// Sessions and their cookies.

// testSession is a fresh session of a K1 user; tenant "" is one that has
// not picked a tenant yet.
func testSession(user, tenant string) *session {
	now := time.Now()
	return &session{ID: randomID(18), Subject: "k1|" + user, Email: user + "@acme.example", Name: user,
		SID: randomID(12), Company: "Acme MSP", Tenant: tenant, IDToken: "id-token-of-" + user,
		AuthTime: now.Unix(), Issued: now.Unix(), Expires: now.Add(8 * time.Hour).Unix()}
}

// sessionCookies is the Cookie header of a browser holding sess.
func sessionCookies(t testing.TB, h *Handler, sess *session) string {
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

// sessionCookieFor encodes bob's session last used at used.
func sessionCookieFor(t testing.TB, h *Handler, id string, issued, used time.Time) string {
	t.Helper()
	sess := &session{ID: id, Subject: "k1|bob", Email: "bob@acme.example", Tenant: "acme", IDToken: "t",
		Issued: issued.Unix(), Expires: issued.Add(8 * time.Hour).Unix(), Used: used.Unix()}
	v, err := securecookie.EncodeMulti(sessionCookie, sess, h.shared.codecs.session...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Requests through a handler, and what comes after it.

// serveWith runs one navigation with the cookie through h and returns the
// user the next handler saw ("" when it was not called) and the response.
func serveWith(t testing.TB, h *Handler, cookie string) (string, *httptest.ResponseRecorder) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/dashboard", nil)
	r.Header.Set("Accept", "text/html")
	r.Header.Set("Cookie", sessionCookie+"="+cookie)
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	user := ""
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		// Read under both spellings: the key is being made canonical.
		if v := append(r.Header[hdrUser], r.Header.Values(hdrUser)...); len(v) > 0 {
			user = v[0]
		}
		return nil
	})
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, r, next); err != nil {
		t.Fatal(err)
	}
	return user, rec
}

// recordingNext is the handler after k1sso: it remembers the request it
// got (nil: never called) and answers 200.
type recordingNext struct{ got *http.Request }

// ServeHTTP records r and answers "upstream".
func (n *recordingNext) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	n.got = r.Clone(r.Context())
	w.Header().Set("Content-Type", "text/plain")
	_, err := w.Write([]byte("upstream"))
	return err
}

// withErrorRoutes puts r in a server whose error routes are routes, as
// Caddy does before the handlers run.
func withErrorRoutes(r *http.Request, routes caddyhttp.RouteList) *http.Request {
	srv := &caddyhttp.Server{Errors: &caddyhttp.HTTPErrorConfig{Routes: routes}}
	ctx := context.WithValue(r.Context(), caddyhttp.ServerCtxKey, srv)
	ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer())
	return r.WithContext(ctx)
}

// answering is an error route's handler.
var answering = caddyhttp.Route{Handlers: []caddyhttp.MiddlewareHandler{caddyhttp.StaticResponse{}}}

// Configuration and test knobs.

// minimal is the head of a k1sso Caddyfile block with only the required
// options, left open for a test to add its own and close it.
const minimal = `k1sso {
	issuer http://127.0.0.1:9000
	client_id bms-proxy
	client_secret {env.K1_CLIENT_SECRET}
	cookie_secret {env.NEW_SECRET} {env.OLD_SECRET}
	users /etc/k1sso/users.csv
`

// setTunable sets a test knob to d until the test ends.
func setTunable(tb testing.TB, t *tunable, d time.Duration) {
	old := t.get()
	t.set(d)
	tb.Cleanup(func() { t.set(old) })
}
