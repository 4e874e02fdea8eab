package caddymodule_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/k1sso/k1sso/internal/codingtest"
	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
	"github.com/k1sso/k1sso/k1dev"
)

// TestMain keeps the Caddy processes of every test in this package out of
// the user's config and data folders.
func TestMain(m *testing.M) {
	// Caddy writes under the XDG folders; keep them out of $HOME.
	dir, _ := os.MkdirTemp("", "k1sso-test-xdg-")
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("XDG_DATA_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Worlds: K1 (k1dev or an in-test OP), a recording upstream and Caddy with
// k1sso between them, each booted for one test.

// world is k1dev, a recording upstream and Caddy with k1sso between them.
type world struct {
	k1 *k1devtest.Instance
	up *testenv.Upstream
	px *testenv.Proxy
	s  testenv.Site
}

// newWorld is k1dev, a recording upstream and Caddy with the demo
// directory and the given k1sso options.
func newWorld(t *testing.T, options ...string) *world {
	t.Helper()
	w := &world{k1: k1devtest.Start(t, nil), up: testenv.NewUpstream(t)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: w.up.URL, Users: testenv.DemoUsers(t), Options: options}
	w.px = testenv.StartCaddy(t, w.s)
	return w
}

// reload loads the world's site again after s was changed, as a config
// reload does.
func (w *world) reload(t *testing.T) {
	t.Helper()
	w.px = testenv.StartCaddy(t, w.s)
}

// demo is the company and password of each K1 user of k1dev.
var demo = map[string][2]string{
	"alice": {"Acme MSP", "alice-pass"},
	"bob":   {"Acme MSP", "bob-pass"},
	"carol": {"Other Co", "carol-pass"},
	"dave":  {"Other Co", "dave-pass"}, // only in worlds that add him to k1dev
}

// login signs a K1 user in through the proxy with a fresh browser and
// returns the browser and the final response.
func (w *world) login(t *testing.T, user, company, pass, start string) (*http.Client, *http.Response) {
	t.Helper()
	c := k1devtest.NewClient()
	resp, err := w.k1.Login(c, w.px.URL+start, user, company, pass)
	if err != nil {
		t.Fatalf("login of %s: %v", user, err)
	}
	return c, resp
}

// loginAs is login as a demo user, with the company and password demo
// holds for them.
func (w *world) loginAs(t *testing.T, user, start string) (*http.Client, *http.Response) {
	t.Helper()
	d := demo[user]
	return w.login(t, user, d[0], d[1], start)
}

// initiateURL is the proxy's /.k1sso/initiate with the given parameters.
func (w *world) initiateURL(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return w.px.URL + "/.k1sso/initiate?" + q.Encode()
}

// adminToken opens the admin page in browser c, signing in at K1 as user
// when K1 asks, and returns the page's CSRF token.
func (w *world) adminToken(t *testing.T, c *http.Client, base, user string) string {
	t.Helper()
	d := demo[user]
	resp, err := w.k1.Login(c, base+"/.k1sso/admin", user, d[0], d[1])
	if err != nil {
		t.Fatalf("signing %s in for the admin page: %v", user, err)
	}
	b := body(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /.k1sso/admin: %d", resp.StatusCode)
	}
	m := csrfRE.FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("admin page has no CSRF token:\n%s", b)
	}
	return m[1]
}

// switchAs turns tenant's integration on or off as K1 user `user` with a
// fresh browser, and returns the browser, the final page and its body.
func (w *world) switchAs(t *testing.T, base, user, tenant string, on bool) (*http.Client, *http.Response, string) {
	t.Helper()
	return w.switchWith(t, base, user, user, tenant, on)
}

// switchWith is switchAs where viewer opens the admin page and posts the
// form, and user signs in at K1 for the change.
func (w *world) switchWith(t *testing.T, base, viewer, user, tenant string, on bool) (*http.Client, *http.Response, string) {
	t.Helper()
	c := k1devtest.NewClient()
	resp := postSwitch(t, c, base, tenant, on, w.adminToken(t, c, base, viewer))
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, w.k1.URL) {
		t.Fatalf("admin POST: %d to %q, want a redirect to K1", resp.StatusCode, loc)
	}
	if u, _ := url.Parse(loc); u.Query().Get("prompt") != "login" {
		t.Fatalf("admin sign-in without prompt=login: %s", loc)
	}
	d := demo[user]
	resp, err := w.k1.Login(c, loc, user, d[0], d[1])
	if err != nil {
		t.Fatalf("K1 sign-in of %s: %v", user, err)
	}
	return c, resp, body(t, resp)
}

// switches reads every tenant's state from the admin page, as alice (an
// admin of every tenant of the demo directory) sees it.
func (w *world) switches(t *testing.T, base string) (map[string]bool, string) {
	t.Helper()
	resp, err := w.k1.Login(k1devtest.NewClient(), base+"/.k1sso/admin", "alice", "Acme MSP", "alice-pass")
	if err != nil {
		t.Fatalf("signing alice in for the admin page: %v", err)
	}
	b := body(t, resp)
	out := map[string]bool{}
	for _, m := range rowRE.FindAllStringSubmatch(b, -1) {
		out[m[1]] = m[2] == "on"
	}
	return out, b
}

// daveWorld is the demo world plus dave, a K1 user of company "Other
// Co", with users (lines of the users file) added to the demo directory.
func daveWorld(t *testing.T, users string) *world {
	t.Helper()
	cfg := k1dev.DefaultConfig()
	cfg.Users = append(cfg.Users, k1dev.User{Username: "dave", Company: "Other Co", Password: "dave-pass",
		Email: "dave@other.example", Name: "Dave Other", TOTPSecret: "JBSWY3DPEHPK3PXPDAVEAAAAAAAAAAAA"})
	file := testenv.DemoUsers(t)
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(users)
	f.Close()
	w := &world{k1: k1devtest.Start(t, cfg), up: testenv.NewUpstream(t)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: w.up.URL, Users: file}
	w.px = testenv.StartCaddy(t, w.s)
	return w
}

// newLaunchWorld is a world whose k1dev client (redirect and
// initiate_login_uri, BMS module base URL) points at the test proxy, so K1's
// My Modules and app launcher launch into it.
func newLaunchWorld(t *testing.T, options ...string) *world {
	t.Helper()
	port := testenv.FreePort(t)
	cfg := k1dev.DefaultConfig()
	cfg.SetClientBaseURL("bms-proxy", fmt.Sprintf("http://127.0.0.1:%d", port))
	w := &world{k1: k1devtest.Start(t, cfg), up: testenv.NewUpstream(t)}
	w.s = testenv.Site{Port: port, K1: w.k1.URL, Upstream: w.up.URL, Users: testenv.DemoUsers(t), Options: options}
	w.px = testenv.StartCaddy(t, w.s)
	return w
}

// injectWorld is k1dev, the page upstream and Caddy with k1sso.
func injectWorld(t *testing.T, options ...string) (*world, *httptest.Server) {
	t.Helper()
	up := pageUpstream(t)
	w := &world{k1: k1devtest.Start(t, nil)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t), Options: options}
	w.px = testenv.StartCaddy(t, w.s)
	return w, up
}

// loginBobAt signs bob in at K1 through the proxy at base with a fresh
// browser and returns his session cookie ("" when he got none).
func loginBobAt(t *testing.T, k1 *k1devtest.Instance, base string) string {
	t.Helper()
	c := k1devtest.NewClient()
	if _, err := k1.Login(c, base+"/.k1sso/login?rd=/x", "bob", "Acme MSP", "bob-pass"); err != nil {
		t.Fatal(err)
	}
	return cookieOf(c, base, "k1sso")
}

// twoInstances runs k1dev and two Caddy processes A and B with the same
// options, and logs bob in through B: K1 then sends its back-channel
// logout to B, while the browser's cookie works at both.
func twoInstances(t *testing.T, storage string, options ...string) (k1 *k1devtest.Instance, a, b *testenv.Process, cookie string) {
	t.Helper()
	k1 = k1devtest.Start(t, nil)
	up := testenv.NewUpstream(t)
	users := testenv.DemoUsers(t)
	site := func() testenv.Site {
		return testenv.Site{K1: k1.URL, Upstream: up.URL, Users: users, Options: options, Storage: storage}
	}
	a = testenv.StartProcess(t, site())
	b = testenv.StartProcess(t, site())
	started := time.Now()
	cookie = loginBobAt(t, k1, b.URL)
	if cookie == "" {
		t.Fatal("no session cookie after the login at B")
	}
	if refused(t, a.URL, cookie) || refused(t, b.URL, cookie) {
		t.Fatal("the fresh session is refused")
	}
	// Past the store grace (5 s) a healthy store keeps the instances in
	// sync (redis: pings on the subscription; caddy: polls), so sessions
	// still work.
	time.Sleep(time.Until(started.Add(6 * time.Second)))
	if refused(t, a.URL, cookie) || refused(t, b.URL, cookie) {
		t.Fatal("the session is refused after the store grace with a healthy store")
	}
	return k1, a, b, cookie
}

// startK1Behind runs k1dev behind the handler wrap returns for it, so a
// test can watch or break what reaches K1; it returns the instance.
func startK1Behind(t *testing.T, wrap func(k1 http.Handler) http.Handler) *k1devtest.Instance {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	cfg := k1dev.DefaultConfig()
	srv, err := k1dev.New(u, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: wrap(srv), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	return &k1devtest.Instance{URL: u, Server: srv, Config: cfg}
}

// The in-test OPs. Each fakes a different K1 on purpose: fakeOP signs
// logout tokens of the test's choosing, the hostile OP (internal/hostileop)
// misbehaves at every step of a login, startK1Behind puts a real k1dev
// behind a handler that watches or breaks it.

// fakeOP is an OpenID Provider that only publishes discovery and a JWKS,
// so a test can sign logout tokens of its own, broken on purpose.
type fakeOP struct {
	URL string
	key *rsa.PrivateKey
}

// newFakeOP starts a fakeOP with a fresh RSA key.
func newFakeOP(t *testing.T) *fakeOP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	op := &fakeOP{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": op.URL, "authorization_endpoint": op.URL + "/authorize", "token_endpoint": op.URL + "/token",
			"jwks_uri": op.URL + "/jwks", "response_types_supported": []string{"code"},
			"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "op-key", Algorithm: "RS256", Use: "sig"}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	op.URL = srv.URL
	return op
}

// sign signs claims with key (the OP's when nil).
func (op *fakeOP) sign(t *testing.T, claims map[string]any, key *rsa.PrivateKey) string {
	t.Helper()
	if key == nil {
		key = op.key
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "op-key"}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims are the claims of a valid logout token for bob, for a test to
// break one by one.
func (op *fakeOP) claims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": op.URL, "aud": "bms-proxy", "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": randomJTI(), "sub": "k1|bob", "sid": "sid-" + randomJTI(),
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
}

// randomJTI is a fresh token ID.
func randomJTI() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return strings.TrimRight(url.QueryEscape(string(b)), "%")
}

// hostile is the hostile OP, a recording upstream and Caddy with k1sso
// between them (issuer = the hostile OP, client bms-proxy).
type hostile struct {
	op *hostileop.OP
	up *testenv.Upstream
	px *testenv.Proxy
	s  testenv.Site
}

// newHostile is startHostile over a fresh hostile OP that is its own issuer.
func newHostile(t *testing.T, options ...string) *hostile {
	t.Helper()
	op := hostileop.Start(t)
	return startHostile(t, op, op.URL, options...)
}

// startHostile runs Caddy with k1sso configured for issuer in front of an
// OP the test has prepared (its discovery is fetched right after start).
func startHostile(t *testing.T, op *hostileop.OP, issuer string, options ...string) *hostile {
	t.Helper()
	h := &hostile{op: op, up: testenv.NewUpstream(t)}
	h.s = testenv.Site{K1: issuer, Upstream: h.up.URL, Users: testenv.DemoUsers(t), Options: options}
	h.px = testenv.StartCaddy(t, h.s)
	return h
}

// login runs a whole login in a fresh browser that follows redirects.
func (h *hostile) login(t *testing.T) (*http.Client, *http.Response) {
	t.Helper()
	c := &http.Client{Jar: newJar(), Timeout: 15 * time.Second}
	resp, err := c.Get(h.px.URL + "/.k1sso/login?rd=/dashboard")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return c, resp
}

// sessionCookie returns the browser's k1sso session cookie, or "".
func (h *hostile) sessionCookie(c *http.Client) string {
	u, _ := url.Parse(h.px.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "k1sso" || strings.HasPrefix(ck.Name, "k1sso-") && !strings.HasPrefix(ck.Name, "k1sso-login-") {
			return ck.Value
		}
	}
	return ""
}

// refused asserts a 4xx page at the proxy, no session cookie and no request
// with an identity at the upstream.
func (h *hostile) refused(t *testing.T, c *http.Client, resp *http.Response, status int) {
	t.Helper()
	b := body(t, resp)
	if !strings.HasPrefix(resp.Request.URL.Path, "/.k1sso/") {
		b = "(an upstream answer)" // it echoes cookies and tokens: not for the log
	}
	if resp.StatusCode != status || !strings.Contains(b, "<html") {
		t.Errorf("got %d at %s, want a %d page: %.300s", resp.StatusCode, resp.Request.URL.Path, status, b)
	}
	if v := h.sessionCookie(c); v != "" {
		t.Error("a session cookie was set")
	}
	h.noIdentityUpstream(t)
	// And the browser really has no session: the next request has no identity.
	if s := testenv.DecodeSeen(t, get(t, c, h.px.URL+"/after")); s.Header.Get("X-BMS-User") != "" {
		t.Errorf("the refused browser has the identity %q", s.Header.Get("X-BMS-User"))
	}
}

// noIdentityUpstream asserts that no request reached the upstream with an
// identity header.
func (h *hostile) noIdentityUpstream(t *testing.T) {
	t.Helper()
	for _, s := range h.up.Requests() {
		for _, k := range []string{"X-BMS-User", "X-K1-Email", "X-K1-Subject", "X-K1-Assertion", "X-BMS-Tenant"} {
			if s.Header.Get(k) != "" {
				t.Errorf("upstream got %s with %s", s.Path, k)
			}
		}
	}
}

// accepted asserts a login that ended at the dashboard as bob.
func (h *hostile) accepted(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dashboard" {
		t.Fatalf("got %d at %s, want the dashboard: %.300s", resp.StatusCode, resp.Request.URL.Path, body(t, resp))
	}
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("accepted login without identity (X-BMS-User %q)", s.Header.Get("X-BMS-User"))
	}
}

// set is an edit of what the hostile OP signs or answers (claims,
// userinfo): k becomes v.
func set(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }

// del is an edit of what the hostile OP signs or answers: keys are dropped.
func del(keys ...string) func(map[string]any) {
	return func(c map[string]any) {
		for _, k := range keys {
			delete(c, k)
		}
	}
}

// Upstreams.

// loginPageUpstream serves a BMS login page, where k1sso adds its link.
func loginPageUpstream(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!doctype html><html><body><form method=post><input name=user></form></body></html>")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// pageUpstream serves fixed pages in the coding asked with ?enc=
// (gzip, zstd, or br: a body the proxy cannot decode), with the CSPs of
// ?csp= (and Report-Only ones of ?cspro=), and in pieces with ?split=; http.ServeContent answers HEAD,
// If-None-Match and Range. It echoes the Accept-Encoding it saw.
func pageUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		hdr := w.Header()
		hdr.Set("X-Seen-Accept-Encoding", r.Header.Get("Accept-Encoding"))
		ctype, page := "text/html; charset=utf-8", ""
		switch r.URL.Path {
		case "/login":
			page = loginPage
		case "/dashboard":
			page = dashPage
		case "/plain":
			page = plainPage
		case "/login/big":
			hdr.Set("Content-Type", ctype)
			for p := bigPage; len(p) > 0; {
				n := min(len(p), 64<<10)
				if _, err := w.Write(p[:n]); err != nil {
					return
				}
				p = p[n:]
			}
			return
		case "/missing":
			hdr.Set("Content-Type", ctype)
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, plainPage)
			return
		case "/data.json":
			ctype, page = "application/json", `{"html":"<span id=\"user-name\">x</span></body>"}`
		case "/img.png":
			ctype, page = "image/png", "\x89PNG\r\n\x1a\n</body>\x00\x01"
		case "/events":
			hdr.Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: <span id=\"user-name\">%d</span></body>\n\n", i)
				w.(http.Flusher).Flush()
			}
			return
		default:
			http.NotFound(w, r)
			return
		}
		body := encode(t, q.Get("enc"), []byte(page))
		hdr.Set("Content-Type", ctype)
		if e := q.Get("enc"); e != "" {
			hdr.Set("Content-Encoding", e)
		}
		for _, csp := range q["csp"] {
			hdr.Add("Content-Security-Policy", csp)
		}
		for _, csp := range q["cspro"] {
			hdr.Add("Content-Security-Policy-Report-Only", csp)
		}
		hdr.Set("ETag", `"v1"`)
		if q.Has("split") {
			// Cut inside every marker, with time for each piece to travel
			// as a write of its own.
			hdr.Set("Content-Length", fmt.Sprint(len(body)))
			cuts := []int{bytes.Index(body, []byte("user-")) + 5, bytes.Index(body, []byte("</sp")) + 3, bytes.Index(body, []byte("</bo")) + 3}
			last := 0
			for _, c := range append(cuts, len(body)) {
				if c < last {
					continue
				}
				w.Write(body[last:c])
				w.(http.Flusher).Flush()
				time.Sleep(30 * time.Millisecond)
				last = c
			}
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The pages pageUpstream serves and the fixed parts of what k1sso injects.
const (
	loginPage = "<!doctype html>\n<html><head><title>BMS</title></head><body>\n<form id=\"login-box\" method=\"post\"><input name=\"username\"></form>\n</body></html>\n"
	dashPage  = "<!doctype html>\n<html><head><title>BMS</title></head><body>\n<header><span class=\"brand\">BMS</span> <span id=\"user-name\">bob</span> <a id=\"logout\" href=\"/logout\">Log out</a></header>\n<main>tickets</main>\n</body></html>\n"
	plainPage = "<!doctype html>\n<html><body><main>no user name here</main></body></html>\n"
	// The launcher snippet's fixed part, as the spec names it.
	launcherTag = `<a id="k1sso-launcher" href="/.k1sso/launcher" title="KaseyaOne apps"`
	loginTag    = `<a id="k1sso-login-link" href="/.k1sso/login">Log in with KaseyaOne</a>`
)

// bigPage is a 10 MB page, built once.
var bigPage = func() []byte {
	var b bytes.Buffer
	b.WriteString("<!doctype html><html><body><header>BMS</header>\n")
	for b.Len() < 10<<20 {
		b.WriteString("<p>a line of a long ticket list, 0123456789</p>\n")
	}
	b.WriteString("</body></html>\n")
	return b.Bytes()
}()

// Requests and what they answer.

// get sends GET u through c with the header pairs hdr (name, value, ...).
func get(t *testing.T, c *http.Client, u string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// body reads and closes resp's body.
func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// withCookie sends GET path with only the given k1sso cookie value, as a
// page load (k1devtest.Navigating), not followed.
func withCookie(t *testing.T, base, path, value string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.AddCookie(&http.Cookie{Name: "k1sso", Value: value})
	resp, err := testenv.NoRedirect(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// getWithCookie makes one request with a raw Cookie header (as a browser
// writes it) and Go's default headers (no Accept: text/html, unlike
// withCookie), and returns the answer, unread and not followed.
func getWithCookie(t *testing.T, u, cookie string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := rawNoFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// rawNoFollow is a client that never follows redirects and keeps no cookies.
var rawNoFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// raw is one response as bytes on the wire (no transparent decoding).
type raw struct {
	status int
	header http.Header
	body   []byte
	length int64
}

// fetchRaw sends one request (redirects not followed, no decoding) with
// the cookies of jar and the header pairs hdr.
func fetchRaw(t *testing.T, jar http.CookieJar, method, u string, hdr ...string) raw {
	t.Helper()
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(method, u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return raw{resp.StatusCode, resp.Header, b, resp.ContentLength}
}

// newJar is an empty cookie jar.
func newJar() http.CookieJar { j, _ := cookiejar.New(nil); return j }

// cookieOf returns the value of a cookie in c's jar for the proxy.
func cookieOf(c *http.Client, base, name string) string {
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// expired reports whether resp expires the named cookie.
func expired(resp *http.Response, name string) bool {
	for _, ck := range resp.Cookies() {
		if ck.Name == name && ck.MaxAge < 0 && ck.Path == "/" {
			return true
		}
	}
	return false
}

// jwtClaims decodes a JWT's payload without checking it (test only).
func jwtClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// refused reports whether the proxy at base turns the session cookie away
// (to the login page) instead of forwarding it with identity.
func refused(t *testing.T, base, cookie string) bool {
	t.Helper()
	resp := withCookie(t, base, "/x", cookie)
	if resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == "/login" {
		resp.Body.Close()
		return true
	}
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("at %s the session is neither refused nor bob's: %d %v", base, resp.StatusCode, s.Header)
	}
	return false
}

// waitRefused polls until base refuses the cookie (at most limit) and
// returns how long that took.
func waitRefused(t *testing.T, base, cookie string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for i := 0; i < 2000; i++ {
		if refused(t, base, cookie) {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still accepts the session %s after the logout", base, limit)
	return 0
}

// userSeen is the BMS user the upstream saw for a request with the session
// cookie ("" when it was refused or carried no identity).
func userSeen(t *testing.T, base, cookie string) string {
	t.Helper()
	resp := withCookie(t, base, "/x", cookie)
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return ""
	}
	return testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
}

// identityLike reports whether a header name is a spelling of an identity
// header (any case, '_' for '-').
func identityLike(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	for _, id := range []string{"x-bms-user", "x-bms-tenant", "x-bms-roles", "x-k1-email", "x-k1-subject", "x-k1-assertion"} {
		if n == id {
			return true
		}
	}
	return false
}

// sidOf logs the browser c out of the proxy (/.k1sso/logout, not followed to
// K1) and returns the K1 sid of its session, read from the id_token_hint
// the proxy hands K1.
func sidOf(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	nr := testenv.NoRedirect(c.Jar)
	form := k1devtest.FindForm([]byte(body(t, get(t, nr, base+"/.k1sso/logout"))), "csrf_token")
	if form == nil {
		t.Fatal("no logout form")
	}
	resp := get(t, nr, base+"/.k1sso/logout?csrf_token="+url.QueryEscape(form.Fields().Get("csrf_token")))
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	sid, _ := jwtClaims(t, loc.Query().Get("id_token_hint"))["sid"].(string)
	if sid == "" {
		t.Fatalf("no sid in the ID token of the logout: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return sid
}

// postLogout posts a back-channel logout token to the proxy and returns
// the status, the header and the JSON body.
func postLogout(t *testing.T, base, token string) (int, http.Header, map[string]string) {
	t.Helper()
	resp, err := http.PostForm(base+"/.k1sso/backchannel-logout", url.Values{"logout_token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]string
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header, m
}

// spLogin starts an SP-initiated login with a fresh browser and returns the
// proxy's first answer.
func spLogin(t *testing.T, base, tenant string) *http.Response {
	t.Helper()
	resp := get(t, testenv.NoRedirect(newJar()), base+"/.k1sso/login?tenant="+tenant)
	resp.Body.Close()
	return resp
}

// postSwitch posts the admin form for tenant and returns the first answer
// (not followed).
func postSwitch(t *testing.T, c *http.Client, base, tenant string, on bool, token string) *http.Response {
	t.Helper()
	f := url.Values{"tenant": {tenant}}
	if token != "" {
		f.Set("csrf_token", token)
	}
	if on {
		f.Set("enabled", "on")
	}
	resp, err := testenv.NoRedirect(c.Jar).PostForm(base+"/.k1sso/admin", f)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// doneMessage is the admin page's notice after a switch was changed.
const doneMessage = "Operation is completed successfully."

// csrfRE finds the CSRF token of a k1sso form.
var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// rowRE finds each tenant's row and switch state on the admin page.
var rowRE = regexp.MustCompile(`data-tenant="([^"]+)" data-enabled="(on|off)"`)

// nonceRE finds the CSP nonce of an injected style element.
var nonceRE = regexp.MustCompile(`<style nonce="([A-Za-z0-9_-]{16,})">`)

// encode compresses b in the content coding enc ("" for none); "deflate"
// is a body no decoder reads, for the codings k1sso passes through.
func encode(t *testing.T, enc string, b []byte) []byte {
	if enc == "deflate" {
		return append([]byte("\x1b\x00not-really-deflate"), b...)
	}
	return codingtest.Compress(t, enc, b)
}
