package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

// The proxy under test and the browser's steps through it, the same for
// every OP.

// The BMS account every test user's email is matched to.
const (
	bmsUser   = "interop.user"
	bmsTenant = "interop"
)

// proxy is a Caddy site with k1sso in front of a recording upstream.
type proxy struct {
	*testenv.Proxy
	up *testenv.Upstream
}

// startProxy runs Caddy with k1sso for the OP at issuer (spelt exactly as
// given), a users file that maps email to bmsUser, and BMS's logout at
// /logout. port is the site's port (0: a free one).
func startProxy(t *testing.T, issuer, email string, port int) *proxy {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.csv")
	csv := "email,bms_user,tenant,tenant_name,roles\n" + email + "," + bmsUser + "," + bmsTenant + ",Interop,admin\n"
	if err := os.WriteFile(users, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	up := testenv.NewUpstream(t)
	px := testenv.StartCaddy(t, testenv.Site{
		Port: port, K1: issuer, Upstream: up.URL, Users: users,
		Options: []string{"logout_path /logout"},
	})
	return &proxy{Proxy: px, up: up}
}

// newBrowser is an HTTP client with a cookie jar that follows redirects,
// like a browser without JavaScript.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp
}

// submitForm finds the first form of the page in resp (body read here)
// that has a field named field, fills values over its hidden inputs and
// submits it with c (following redirects).
func submitForm(t *testing.T, c *http.Client, resp *http.Response, field string, values url.Values) *http.Response {
	t.Helper()
	body := readBody(t, resp)
	forms := regexp.MustCompile(`(?is)<form[^>]*>.*?</form>`).FindAllString(body, -1)
	for _, f := range forms {
		if !strings.Contains(f, `name="`+field+`"`) {
			continue
		}
		action := attr(regexp.MustCompile(`(?i)<form[^>]*>`).FindString(f), "action")
		form := url.Values{}
		for _, in := range regexp.MustCompile(`(?i)<input[^>]*>`).FindAllString(f, -1) {
			if strings.EqualFold(attr(in, "type"), "hidden") {
				form.Set(attr(in, "name"), attr(in, "value"))
			}
		}
		for k, v := range values {
			form[k] = v
		}
		target, err := resp.Request.URL.Parse(action)
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.PostForm(target.String(), form)
		if err != nil {
			t.Fatalf("submitting the form at %s: %v", resp.Request.URL, err)
		}
		return next
	}
	t.Fatalf("no form with %q at %s (status %d): %.500s", field, resp.Request.URL, resp.StatusCode, body)
	return nil
}

// attr is the value of HTML attribute name in tag ("" if absent).
func attr(tag, name string) string {
	m := regexp.MustCompile(`(?i)\s` + name + `="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readSeen is the upstream's record of the request resp answers.
func readSeen(t *testing.T, resp *http.Response) testenv.Seen {
	t.Helper()
	return testenv.DecodeSeen(t, resp)
}

func describe(resp *http.Response) string {
	return fmt.Sprintf("%d %s", resp.StatusCode, resp.Request.URL)
}

// whoami is the proxy's /.k1sso/whoami status for the cookies of c.
func whoami(t *testing.T, c *http.Client, px *proxy) (int, string) {
	t.Helper()
	resp := get(t, c, px.URL+"/.k1sso/whoami")
	body := readBody(t, resp)
	var w struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal([]byte(body), &w)
	return resp.StatusCode, w.Email
}

// checkIdentity checks that resp is the upstream's answer to path with the
// identity of email.
func checkIdentity(t *testing.T, resp *http.Response, path, email, sub string) {
	t.Helper()
	s := testenv.DecodeSeen(t, resp)
	if s.Path != path {
		t.Errorf("upstream got %s, want %s", s.Path, path)
	}
	want := map[string]string{"X-Bms-User": bmsUser, "X-Bms-Tenant": bmsTenant, "X-K1-Email": email, "X-K1-Subject": sub}
	for h, v := range want {
		if got := s.Header.Get(h); got != v {
			t.Errorf("upstream got %s %q, want %q", h, got, v)
		}
	}
	if s.Header.Get("X-K1-Assertion") == "" {
		t.Error("upstream got no X-K1-Assertion")
	}
}

// waitSignedOut waits (up to 10 s) until the proxy no longer knows the
// session of c's cookies.
func waitSignedOut(t *testing.T, c *http.Client, px *proxy) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, email := whoami(t, c, px)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy session still valid after 10s: whoami %d %s", status, email)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// publishedIssuer is the issuer of the OP's discovery document at base.
func publishedIssuer(t *testing.T, discovery string) string {
	t.Helper()
	resp, err := http.Get(discovery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.Issuer == "" {
		t.Fatalf("discovery %s: status %d, no issuer (%v)", discovery, resp.StatusCode, err)
	}
	return d.Issuer
}

// hostOf is the host:port of u.
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Ory Hydra as the OP: one server for the package and the login and
// consent app it calls; tool provides the binaries the tests run.

// The user our login app accepts at Hydra, and what the consent app puts
// into the ID token for it.
const (
	hydraUser     = "hydra-user"
	hydraPassword = "hydra-pass"
	hydraSubject  = "7d3f2a1e-hydra-user"
	hydraEmail    = "hydra.user@interop.example"
)

var (
	hydraMu      sync.Mutex
	hydraRunning *hydraOP
)

// startHydra returns the package's Hydra, starting it on first use (the
// tests share it; each registers its own client). It is stopped by
// TestMain. When the test fails, Hydra's output is logged.
func startHydra(t *testing.T) *hydraOP {
	t.Helper()
	bin := hydraTool.binary(t)
	hydraMu.Lock()
	defer hydraMu.Unlock()
	// A free port can be taken by another process before Hydra binds it:
	// try new ports, a few times.
	for attempt := 1; hydraRunning == nil; attempt++ {
		h, err := runHydra(bin)
		if err == nil {
			hydraRunning = h
			break
		}
		if attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v", attempt, err)
	}
	h := hydraRunning
	h.app.reset()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hydra said:\n%s", h.out.tail(8000))
		}
	})
	return h
}

func stopHydra() {
	hydraMu.Lock()
	defer hydraMu.Unlock()
	if hydraRunning != nil {
		hydraRunning.stop()
		hydraRunning = nil
	}
}

func runHydra(bin string) (*hydraOP, error) {
	pub, err := freePort()
	if err != nil {
		return nil, err
	}
	adm, err := freePort()
	if err != nil {
		return nil, err
	}
	h := &hydraOP{
		Issuer:  fmt.Sprintf("http://127.0.0.1:%d/", pub),
		Admin:   fmt.Sprintf("http://127.0.0.1:%d", adm),
		out:     &lockedBuffer{},
		stopped: make(chan struct{}),
	}
	h.app = newHydraApp(h.Admin)
	home, err := os.MkdirTemp("", "k1sso-interop-hydra-")
	if err != nil {
		return nil, err
	}
	h.cmd = exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	h.cmd.Env = append(os.Environ(),
		"HOME="+home,
		"DSN=memory",
		"SECRETS_SYSTEM=interop-hydra-system-secret-0123456789",
		"URLS_SELF_ISSUER="+h.Issuer,
		"URLS_LOGIN="+h.app.URL+"/login",
		"URLS_CONSENT="+h.app.URL+"/consent",
		"URLS_LOGOUT="+h.app.URL+"/logout",
		"SERVE_PUBLIC_HOST=127.0.0.1",
		fmt.Sprintf("SERVE_PUBLIC_PORT=%d", pub),
		"SERVE_ADMIN_HOST=127.0.0.1",
		fmt.Sprintf("SERVE_ADMIN_PORT=%d", adm),
		"LOG_LEVEL=info",
	)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	if err := h.cmd.Start(); err != nil {
		os.RemoveAll(home)
		h.app.srv.Close()
		return nil, fmt.Errorf("starting hydra: %w", err)
	}
	go func() { _ = h.cmd.Wait(); os.RemoveAll(home); close(h.stopped) }()
	// DSN=memory runs every migration at start: give it time on a busy
	// machine, but not forever.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-h.stopped:
			h.app.srv.Close()
			return nil, fmt.Errorf("hydra exited at start:\n%s", h.out.tail(8000))
		default:
		}
		if ok(h.Admin+"/health/ready") && ok(h.Issuer+".well-known/openid-configuration") {
			return h, nil
		}
		if time.Now().After(deadline) {
			h.stop()
			return nil, fmt.Errorf("hydra did not become ready in 90s:\n%s", h.out.tail(8000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ok reports whether url answers 200.
func ok(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// hydraOP is a running Hydra: `hydra serve all --dev` with DSN=memory, its
// public and admin ports on 127.0.0.1, and our login, consent and logout
// app in front of its admin API.
type hydraOP struct {
	// Issuer is the issuer exactly as Hydra publishes it (with the "/" of
	// Hydra's own default, http://localhost:4444/).
	Issuer string
	// Admin is the admin API's base URL.
	Admin string
	app   *hydraApp

	cmd     *exec.Cmd
	out     *lockedBuffer
	stopped chan struct{}
}

// stop ends Hydra (SIGTERM, then SIGKILL after 5 s) and the login app.
func (h *hydraOP) stop() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.stopped:
	case <-time.After(5 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.stopped
	}
	h.app.srv.Close()
}

// registerClient (re)creates the proxy's client through the admin API:
// client_id and secret as testenv's sites use, and the redirect,
// post-logout and back-channel logout URIs of the proxy at base. The
// back-channel URI is our app's relay to the proxy's, which records what
// Hydra sent and what the proxy answered.
func (h *hydraOP) registerClient(t *testing.T, base string) {
	t.Helper()
	h.app.setRelay(base + "/.k1sso/backchannel-logout")
	req, _ := http.NewRequest(http.MethodDelete, h.Admin+"/admin/clients/bms-proxy", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	client := map[string]any{
		"client_id":                           "bms-proxy",
		"client_secret":                       "bms-proxy-secret",
		"client_name":                         "k1sso interop",
		"grant_types":                         []string{"authorization_code", "refresh_token"},
		"response_types":                      []string{"code"},
		"scope":                               "openid email profile",
		"token_endpoint_auth_method":          "client_secret_basic",
		"redirect_uris":                       []string{base + "/.k1sso/callback"},
		"post_logout_redirect_uris":           []string{base + "/login"},
		"backchannel_logout_uri":              h.app.URL + "/backchannel-logout",
		"backchannel_logout_session_required": true,
	}
	var created map[string]any
	if status := adminJSON(http.MethodPost, h.Admin+"/admin/clients", client, &created); status != http.StatusCreated {
		t.Fatalf("registering the client at hydra: status %d: %v", status, created)
	}
}

// adminJSON sends body as JSON to Hydra's admin API and decodes the answer
// into out; it returns the status (0 when Hydra could not be reached).
func adminJSON(method, u string, body, out any) int {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	return resp.StatusCode
}

// hydraLogout is a logout request as Hydra's admin API describes it.
type hydraLogout struct {
	Subject     string `json:"subject"`
	SID         string `json:"sid"`
	RPInitiated bool   `json:"rp_initiated"`
	RequestURL  string `json:"request_url"`
	Client      *struct {
		ClientID string `json:"client_id"`
	} `json:"client"`
}

// claimNames lists the claim names of a JWT's payload, sorted (the token
// is not verified: this is for the test's messages only).
func claimNames(jwt string) []string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Keep the last MiB or so: enough to debug, bounded however long the
	// package runs.
	if l.b.Len() > 1<<20 {
		rest := append([]byte(nil), l.b.Bytes()[l.b.Len()-(512<<10):]...)
		l.b.Reset()
		l.b.Write(rest)
	}
	return l.b.Write(p)
}

// tail is the last n bytes written.
func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// hydraApp is our login, consent and logout app for Hydra (Hydra has no
// user interface of its own). Login shows a form and accepts hydraUser;
// consent grants what was asked and puts email, email_verified and name
// into the ID token; logout accepts and records each logout request.
type hydraApp struct {
	URL   string
	admin string
	srv   *httptest.Server

	mu      sync.Mutex
	logouts []hydraLogout
	relayTo string
	relayed []relayed
}

func newHydraApp(admin string) *hydraApp {
	a := &hydraApp{admin: admin}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("POST /login", a.loginSubmit)
	mux.HandleFunc("GET /consent", a.consent)
	mux.HandleFunc("GET /logout", a.logout)
	mux.HandleFunc("POST /backchannel-logout", a.relay)
	a.srv = httptest.NewServer(mux)
	a.URL = a.srv.URL
	return a
}

var loginForm = template.Must(template.New("login").Parse(`<!doctype html>
<title>Hydra test login</title>
<form method="post" action="/login">
<input type="hidden" name="challenge" value="{{.}}">
<input name="username"> <input name="password" type="password">
<button>Sign in</button>
</form>`))

func (a *hydraApp) reset() {
	a.mu.Lock()
	a.logouts, a.relayed = nil, nil
	a.mu.Unlock()
}

func (a *hydraApp) setRelay(to string) {
	a.mu.Lock()
	a.relayTo = to
	a.mu.Unlock()
}

// Relayed returns the back-channel logouts relayed so far in this test.
func (a *hydraApp) Relayed() []relayed {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]relayed(nil), a.relayed...)
}

// relay passes Hydra's back-channel logout on to the proxy unchanged and
// answers with the proxy's status.
func (a *hydraApp) relay(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	to := a.relayTo
	a.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	rec := relayed{Claims: claimNames(r.PostForm.Get("logout_token"))}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.PostForm(to, r.PostForm)
	if err != nil {
		rec.Answer = err.Error()
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		rec.Status, rec.Answer = resp.StatusCode, string(b)
	}
	a.mu.Lock()
	a.relayed = append(a.relayed, rec)
	a.mu.Unlock()
	if rec.Status == 0 {
		http.Error(w, "proxy unreachable", http.StatusBadGateway)
		return
	}
	w.WriteHeader(rec.Status)
}

// relayed is one back-channel logout Hydra sent: the names of its logout
// token's claims (read, not verified) and the proxy's answer.
type relayed struct {
	Claims []string
	Status int
	Answer string
}

// Logouts returns the logout requests accepted so far in this test.
func (a *hydraApp) Logouts() []hydraLogout {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]hydraLogout(nil), a.logouts...)
}

// accept PUTs body to the accept endpoint of a flow and redirects the
// browser where Hydra says.
func (a *hydraApp) accept(w http.ResponseWriter, r *http.Request, flow, challenge string, body any) {
	var res struct {
		RedirectTo string `json:"redirect_to"`
	}
	u := a.admin + "/admin/oauth2/auth/requests/" + flow + "/accept?" + url.Values{flow + "_challenge": {challenge}}.Encode()
	if status := adminJSON(http.MethodPut, u, body, &res); status != http.StatusOK || res.RedirectTo == "" {
		http.Error(w, fmt.Sprintf("hydra refused the %s acceptance: status %d", flow, status), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, res.RedirectTo, http.StatusFound)
}

// request GETs the flow's request from the admin API into out.
func (a *hydraApp) request(flow, challenge string, out any) bool {
	u := a.admin + "/admin/oauth2/auth/requests/" + flow + "?" + url.Values{flow + "_challenge": {challenge}}.Encode()
	return adminJSON(http.MethodGet, u, nil, out) == http.StatusOK
}

func (a *hydraApp) login(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	var lr struct {
		Skip    bool   `json:"skip"`
		Subject string `json:"subject"`
	}
	if !a.request("login", challenge, &lr) {
		http.Error(w, "unknown login challenge", http.StatusBadRequest)
		return
	}
	if lr.Skip {
		// Hydra remembers the user: it must be accepted as the same subject.
		a.accept(w, r, "login", challenge, map[string]any{"subject": lr.Subject})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginForm.Execute(w, challenge)
}

func (a *hydraApp) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("username") != hydraUser || r.PostFormValue("password") != hydraPassword {
		http.Error(w, "wrong user or password", http.StatusUnauthorized)
		return
	}
	a.accept(w, r, "login", r.PostFormValue("challenge"), map[string]any{
		"subject":      hydraSubject,
		"remember":     true,
		"remember_for": 3600,
		"amr":          []string{"pwd"},
	})
}

func (a *hydraApp) consent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	var cr struct {
		RequestedScope    []string `json:"requested_scope"`
		RequestedAudience []string `json:"requested_access_token_audience"`
	}
	if !a.request("consent", challenge, &cr) {
		http.Error(w, "unknown consent challenge", http.StatusBadRequest)
		return
	}
	a.accept(w, r, "consent", challenge, map[string]any{
		"grant_scope":                 cr.RequestedScope,
		"grant_access_token_audience": cr.RequestedAudience,
		"session": map[string]any{
			"id_token": map[string]any{
				"email":          hydraEmail,
				"email_verified": true,
				"name":           "Hydra User",
			},
		},
	})
}

func (a *hydraApp) logout(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("logout_challenge")
	var lr hydraLogout
	if !a.request("logout", challenge, &lr) {
		http.Error(w, "unknown logout challenge", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.logouts = append(a.logouts, lr)
	a.mu.Unlock()
	a.accept(w, r, "logout", challenge, nil)
}

// tool is a program built from one of the tools modules (tools/<name>),
// whose go.mod pins it and keeps its dependencies out of k1sso's go.mod.
type tool struct {
	name string // binary name
	pkg  string // main package
	tags string // build tags
	cgo  bool   // CGO_ENABLED=1 (Hydra's in-memory database is SQLite)

	ctx  context.Context // cancelled when the tests are done
	once sync.Once
	done chan struct{}
	path string
	err  error
}

// start builds the tool in the background (once) unless the binary for
// exactly this go.mod, go.sum, tags and Go version is already there. The
// binary lives in one place per version under the temp folder and is
// replaced atomically, so concurrent runs never see half a file.
func (tl *tool) start() {
	tl.once.Do(func() {
		tl.done = make(chan struct{})
		go func() {
			defer close(tl.done)
			tl.path, tl.err = tl.build(tl.ctx)
		}()
	})
}

func (tl *tool) build(ctx context.Context) (string, error) {
	dir := filepath.Join(testenv.RepoRoot(), "interop", "tools", tl.name)
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("reading the %s tools module: %w", tl.name, err)
		}
		h.Write(b)
	}
	fmt.Fprintf(h, "\x00%s\x00%s\x00%s/%s", tl.tags, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	out := filepath.Join(os.TempDir(), "k1sso-interop-"+hex.EncodeToString(h.Sum(nil)[:8]))
	bin := filepath.Join(out, tl.name)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(out, tl.name+"-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", tl.tags, "-ldflags", "-s -w", "-o", tmp.Name(), tl.pkg)
	cmd.Dir = dir
	// Its own process group, so that a cancelled build ends with its
	// compilers instead of leaving them running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cgo := "0"
	if tl.cgo {
		cgo = "1"
	}
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	if b, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("building %s (%s): %v\n%s", tl.name, tl.pkg, err, b)
	}
	fmt.Fprintf(os.Stderr, "interop: built %s in %s\n", tl.name, time.Since(start).Round(time.Second))
	return bin, os.Rename(tmp.Name(), bin)
}

// binary waits for the build and returns the binary's path; a failed build
// fails the test (CI must never skip these tests).
func (tl *tool) binary(tb testing.TB) string {
	tb.Helper()
	tl.start()
	select {
	case <-tl.done:
	case <-time.After(12 * time.Minute):
		tb.Fatalf("building %s took more than 12 minutes", tl.name)
	}
	if tl.err != nil {
		tb.Fatal(tl.err)
	}
	return tl.path
}

// hydraTool is Ory Hydra as tools/hydra/go.mod pins it, with SQLite for
// DSN=memory (the tags of Hydra's own release build).
var hydraTool = &tool{name: "hydra", pkg: "github.com/ory/hydra/v2", tags: "sqlite,sqlite_omit_load_extension", cgo: true}
