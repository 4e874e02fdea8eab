// Package e2e runs every sign-in and logout flow end to end in a real Chromium:
// the built Caddy with the k1sso module as a process, k1dev and the demo BMS
// in-process, all on free loopback ports. Every flow runs twice: on http,
// as the quick start runs, and on https as production runs (Caddy's
// `tls internal`, __Host- cookies, HTTP/2). Screenshots of the steps go to
// e2e/screenshots/ (git-ignored).
package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/k1sso/k1sso/examples/bms"
	"github.com/k1sso/k1sso/internal/testenv"
	"github.com/k1sso/k1sso/k1dev"
)

const (
	// testTimeout bounds one test: world, browser and every step.
	testTimeout = 120 * time.Second
	// stepTimeout bounds one step; steps wait on events, so this is only
	// reached when the page never shows what the step waits for.
	stepTimeout = 20 * time.Second
	// proxyHost is the host the browser uses for the proxy. It differs from
	// k1dev's (127.0.0.1), so the proxy and K1 are different sites to the
	// browser, as they are in production (cookies, SameSite).
	proxyHost = "localhost"
	// cookieSecret is the test cookie secret (>= 32 bytes).
	cookieSecret = "e2e-cookie-secret-0123456789abcdef0123"
)

// browsers are the commands tried in order, the same set scripts/deps.sh
// accepts; Debian's chromium first.
var browsers = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

// flowOptions are the k1sso options every flow runs with, beside the
// ones a flow asks for.
var flowOptions = []string{
	"logout_path /logout",
	"upstream_cookies BMSSESSION",
}

// browserPath finds Chromium; a missing browser fails the test (never a
// skip), saying how to install it.
func browserPath(t testing.TB) string {
	t.Helper()
	for _, b := range browsers {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	t.Fatalf("e2e: no Chromium found (tried %s): install it with `scripts/deps.sh` or `apt-get install chromium`", strings.Join(browsers, ", "))
	return ""
}

// serve runs h on a free 127.0.0.1 port until the test ends and returns its
// "http://127.0.0.1:port" base URL.
func serve(t testing.TB, h http.Handler) (string, net.Listener) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + l.Addr().String(), l
}

// world is one test's KaseyaOne, BMS, proxy and browser tab.
type world struct {
	t      *testing.T
	k1     *k1dev.Server
	k1URL  string // k1dev's issuer and base URL
	bmsURL string // the demo BMS, reached only through the proxy
	proxy  string // what the browser opens: http(s)://localhost:port
	https  bool   // the proxy is on https (Caddy's tls internal)
	ctx    context.Context
	steps  int // steps run so far, numbering the screenshots

	consoleMu sync.Mutex
	console   []string // the browser's log entries

	traffic traffic // on https: what the browser sent to and got from the proxy

	bin    string                // the Caddy binary
	siteAt func(port int) string // the proxy's Caddyfile on another port (a second instance)
	caFile string                // on https: the test CA's root certificate
}

// bothSchemes runs flow twice, each time in a fresh world with the
// required options: on http, and on https. The two run side by side (the
// worlds share nothing, and most of a flow is waiting for the browser), so
// the second scheme costs the package little time.
func bothSchemes(t *testing.T, required []string, flow func(w *world)) {
	for _, https := range []bool{false, true} {
		name := "http"
		if https {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			flow(newWorld(t, https, required...))
		})
	}
}

// caddyfile renders the site: the k1sso block with options, then the BMS.
// With a CA the site is on https with `tls internal`, its certificates
// issued by that CA's root.
func caddyfile(storage string, port int, k1URL, users, bmsAddr string, options []string, ca *testCA) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin off\n\tpersist_config off\n\tstorage file_system {\n\t\troot %s\n\t}\n", storage)
	scheme, tls := "http", ""
	if ca == nil {
		b.WriteString("\tauto_https off\n")
	} else {
		// No redirect server on port 80, and the root stays out of the
		// system's trust store.
		scheme, tls = "https", "\ttls internal\n"
		fmt.Fprintf(&b, "\tauto_https disable_redirects\n\tskip_install_trust\n\tpki {\n\t\tca local {\n\t\t\troot {\n\t\t\t\tcert %s\n\t\t\t\tkey %s\n\t\t\t}\n\t\t}\n\t}\n", ca.certFile, ca.keyFile)
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "%s://%s:%d {\n\tbind 127.0.0.1\n%s\tk1sso {\n", scheme, proxyHost, port, tls)
	lines := append([]string{
		"issuer " + k1URL,
		"client_id bms-proxy",
		"client_secret bms-proxy-secret",
		"cookie_secret " + cookieSecret,
		"users " + users,
		"login_path /login",
		"landing_page /dashboard",
		"public /static/*",
	}, options...)
	for _, l := range lines {
		fmt.Fprintf(&b, "\t\t%s\n", l)
	}
	fmt.Fprintf(&b, "\t}\n\treverse_proxy %s\n}\n", bmsAddr)
	return b.String()
}

// newWorld starts k1dev, the demo BMS, Caddy (with flowOptions plus
// required) and a fresh Chromium, all stopped when the test ends. With https the proxy is
// on https with `tls internal` under a CA made for the test, k1dev runs
// examples/k1dev.json with the client moved to the proxy's port and trusts
// that CA for its back-channel logout (the -ca-file flag), and what only
// https shows is checked when the test ends (see checkHTTPS).
func newWorld(t *testing.T, https bool, required ...string) *world {
	t.Helper()
	return newWorldBin(t, https, testenv.CaddyBinary(t), required...)
}

// newWorldBin is newWorld with another Caddy binary (testenv.CaddyBinaryTags).
func newWorldBin(t *testing.T, https bool, bin string, required ...string) *world {
	t.Helper()
	chrome := browserPath(t)

	options := append(append([]string{}, flowOptions...), required...)

	// The proxy's port comes first: k1dev registers the client's URIs
	// (redirect, initiate login, logout) on it when it starts.
	port := testenv.FreePort(t)
	w := &world{t: t, https: https, proxy: fmt.Sprintf("http://%s:%d", proxyHost, port)}
	dir := t.TempDir()
	cfg := k1dev.DefaultConfig()
	var (
		ca     *testCA
		k1opts []k1dev.Option
		err    error
	)
	if https {
		w.proxy = fmt.Sprintf("https://%s:%d", proxyHost, port)
		ca = newTestCA(t, dir)
		if cfg, err = k1dev.LoadConfig(filepath.Join(testenv.RepoRoot(), "examples", "k1dev.json")); err != nil {
			t.Fatal(err)
		}
		pool, err := k1dev.LoadCAFile(ca.certFile)
		if err != nil {
			t.Fatal(err)
		}
		k1opts = append(k1opts, k1dev.WithRootCAs(pool))
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.k1URL = "http://" + l.Addr().String()
	cfg.SetClientBaseURL("bms-proxy", w.proxy)
	w.k1, err = k1dev.New(w.k1URL, cfg, k1opts...)
	if err != nil {
		l.Close()
		t.Fatalf("e2e: starting k1dev: %v", err)
	}
	hs := &http.Server{Handler: w.k1, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })

	var bl net.Listener
	w.bmsURL, bl = serve(t, bms.New(bms.DefaultConfig()))

	users := filepath.Join(dir, "users.csv")
	csv, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "users.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(users, csv, 0o600); err != nil {
		t.Fatal(err)
	}
	text := caddyfile(filepath.Join(dir, "storage"), port, w.k1URL, users, bl.Addr().String(), options, ca)
	w.bin = bin
	w.siteAt = func(port int) string {
		return caddyfile(filepath.Join(dir, "storage"), port, w.k1URL, users, bl.Addr().String(), options, ca)
	}
	if ca != nil {
		w.caFile = ca.certFile
	}
	// Screenshots of an earlier run of this test would mix with this run's.
	old, _ := filepath.Glob(filepath.Join(screenshotDir(t), strings.ReplaceAll(t.Name(), "/", "_")+"-*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	testenv.RunCaddyfileBin(t, bin, text, port)
	var flags []chromedp.ExecAllocatorOption
	if https {
		flags = append(flags, chromedp.Flag("ignore-certificate-errors-spki-list", ca.waitForSite(t, port)))
	}
	w.startBrowser(chrome, flags...)
	if https {
		w.traffic.origin = w.proxy
		if err := chromedp.Listen(w.ctx, w.traffic.record); err != nil {
			t.Fatalf("e2e: listening to chromium's network: %v", err)
		}
		// Registered after the browser's own cleanups, so it runs before
		// they stop the browser.
		t.Cleanup(w.checkHTTPS)
	}
	return w
}

// startBrowser starts a fresh headless Chromium for this test, with extra
// flags.
func (w *world) startBrowser(chrome string, extra ...chromedp.ExecAllocatorOption) {
	t := w.t
	t.Helper()
	base, cancelBase := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancelBase)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(func(string, ...any) {}))
	t.Cleanup(cancelTab)
	// The first run starts the browser and binds it to ctx (not to a step's
	// timeout).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("e2e: starting chromium %s: %v", chrome, err)
	}
	// The browser's own messages (a CSP violation, a blocked form) explain
	// a step that waits in vain; a failing step prints the last ones.
	if err := chromedp.Listen(ctx, func(ev any) {
		e, ok := ev.(*cdplog.EventEntryAdded)
		if !ok || e.Entry == nil || e.Entry.Level == cdplog.EntryLevelVerbose || strings.HasSuffix(e.Entry.URL, "/favicon.ico") {
			return
		}
		msg := fmt.Sprintf("%s %s: %s", e.Entry.Level, e.Entry.Source, e.Entry.Text)
		if e.Entry.URL != "" {
			// Without the query: it may carry a code or a state.
			msg += " (" + strings.SplitN(e.Entry.URL, "?", 2)[0] + ")"
		}
		w.consoleMu.Lock()
		w.console = append(w.console, msg)
		w.consoleMu.Unlock()
	}); err != nil {
		t.Fatalf("e2e: listening to chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("e2e: enabling chromium's log: %v", err)
	}
	w.ctx = ctx
}

// lastConsole returns the browser's last n log entries.
func (w *world) lastConsole(n int) []string {
	w.consoleMu.Lock()
	defer w.consoleMu.Unlock()
	c := w.console
	if len(c) > n {
		c = c[len(c)-n:]
	}
	return append([]string(nil), c...)
}

// screenshotDir is where steps leave their screenshots.
func screenshotDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("screenshots")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// step runs actions as one named step of the flow, within stepTimeout, and
// saves a screenshot <Test>-<nn>-<name>.png after it; a failing step fails
// the test with the path of its screenshot, the page's address and the
// start of its text.
func (w *world) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	t := w.t
	t.Helper()
	w.steps++
	shot := filepath.Join(screenshotDir(t), fmt.Sprintf("%s-%02d-%s.png", strings.ReplaceAll(t.Name(), "/", "_"), w.steps, name))
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	err := chromedp.Do(ctx, actions...)
	cancel()
	saved := w.screenshot(shot)
	if err == nil {
		return
	}
	where := ""
	sctx, scancel := context.WithTimeout(w.ctx, 3*time.Second)
	defer scancel()
	// Origin and path only: the query may carry a code or a state.
	if loc, lerr := chromedp.Run(sctx, chromedp.Evaluate[string](`location.origin + location.pathname`)); lerr == nil {
		where = "\n  page: " + loc
	}
	if text, terr := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); terr == nil {
		text = jwtLike.ReplaceAllString(strings.Join(strings.Fields(text), " "), "[token]")
		if len(text) > 300 {
			text = text[:300] + "…"
		}
		where += "\n  text: " + text
	}
	for _, c := range w.lastConsole(5) {
		where += "\n  browser: " + c
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("waited %s: %w", stepTimeout, err)
	}
	if saved != nil {
		t.Fatalf("step %q failed: %v\n  screenshot: none (%v)%s", name, err, saved, where)
	}
	t.Fatalf("step %q failed: %v\n  screenshot: %s%s", name, err, shot, where)
}

// jwtLike matches what looks like a JWT (or the start of one) in page text,
// so no token reaches the test output.
var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_\-.]*…?`)

// screenshot saves the visible page as a PNG.
func (w *world) screenshot(path string) error {
	ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// Actions used by the flows. Selectors are CSS (chromedp.CSS) unless said.

// open navigates the tab to url.
func open(url string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(url) }

// visible waits until the element matching the CSS selector is shown.
func visible(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.CSS(sel))
}

// visibleText waits until an element whose own text contains s is shown.
func visibleText(s string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.Search(fmt.Sprintf(`//*[contains(text(), %q)]`, s)))
}

// click clicks the element matching the CSS selector, once it is shown.
func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

// typeInto replaces the value of an input by typing text into it.
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Clear(chromedp.CSS(sel)),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	)
}

// eval evaluates a JavaScript expression that yields a string (promises are
// awaited) and hands the result to check.
func eval(expr string, check func(string) error) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		v, err := chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise)(ctx, tg)
		if err != nil {
			return fmt.Errorf("evaluating %s: %w", expr, err)
		}
		return check(v)
	})
}

// expectText checks the trimmed text of the element (which must exist now).
func expectText(sel, want string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText.trim() : "<no element %s>"; })()`, sel, sel)
	return eval(js, func(got string) error {
		if got != want {
			return fmt.Errorf("%s shows %q, want %q", sel, got, want)
		}
		return nil
	})
}

// expectHeader checks what the demo BMS's dashboard says the upstream
// received in header name ("" = must be absent).
func expectHeader(name, want string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector('#identity-headers tr[data-header=%q] .value'); return e ? "=" + e.getAttribute("data-value") : "absent"; })()`, name)
	return eval(js, func(got string) error {
		switch {
		case want == "" && got != "absent":
			return fmt.Errorf("upstream received %s %q, want none", name, strings.TrimPrefix(got, "="))
		case want != "" && got == "absent":
			return fmt.Errorf("upstream received no %s header, want %q", name, want)
		case want != "" && got != "="+want:
			return fmt.Errorf("upstream received %s %q, want %q", name, strings.TrimPrefix(got, "="), want)
		}
		return nil
	})
}

// expectLocation checks the tab's address: origin and path.
func expectLocation(origin, path string) chromedp.Action[chromedp.Void] {
	return eval(`location.origin + " " + location.pathname`, func(got string) error {
		if got != origin+" "+path {
			return fmt.Errorf("page is at %q, want %q", got, origin+" "+path)
		}
		return nil
	})
}

// expectStatus fetches path from the page (same origin, no redirects
// followed; a redirect reads as 0) and checks the status code.
func expectStatus(path string, want int) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`fetch(%q, {redirect: "manual", credentials: "same-origin"}).then(r => String(r.status))`, path)
	return eval(js, func(got string) error {
		if got != fmt.Sprint(want) {
			return fmt.Errorf("GET %s answered %s, want %d (0 = a redirect)", path, got, want)
		}
		return nil
	})
}

// k1Form is K1's first login form (BMS's login form has the same id).
const k1Form = `form#login-form[action="/login/password"]`

// k1Credentials fills K1's first login form (username, company, password)
// and waits for the second, the 6-digit code.
func (w *world) k1Credentials(user, company, password string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		visible(k1Form),
		expectOrigin(w.k1URL),
		typeInto("#username", user),
		typeInto("#company", company),
		typeInto("#password", password),
		click("#login-submit"),
		visible("#code"),
	}
}

// k1Code types the user's current 6-digit code into K1's second form and
// submits it.
func (w *world) k1Code(user string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		visible("#code"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			// Read at the last moment, so the code is current.
			code, err := w.k1.TOTP(user)
			if err != nil {
				return err
			}
			_, err = typeInto("#code", code)(ctx, tg)
			return err
		}),
		click("#code-submit"),
	}
}

// expectOrigin checks the page's origin.
func expectOrigin(origin string) chromedp.Action[chromedp.Void] {
	return eval(`location.origin`, func(got string) error {
		if got != origin {
			return fmt.Errorf("page is on %s, want %s", got, origin)
		}
		return nil
	})
}

// clickAndLoad clicks the element and waits until the page it leads to
// (after any redirects) has loaded.
func clickAndLoad(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))(ctx, tg)
		return err
	})
}

// actions joins action lists into one step's actions.
func actions(lists ...[]chromedp.Action[chromedp.Void]) []chromedp.Action[chromedp.Void] {
	var all []chromedp.Action[chromedp.Void]
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

// dashboardOf checks the BMS dashboard shows user in tenant, and that the
// upstream received the identity headers of that account.
func (w *world) dashboardOf(user, tenant, email string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		visible("#identity-headers"),
		expectLocation(w.proxy, "/dashboard"),
		expectText("#user-name", user),
		expectHeader("X-BMS-User", user),
		expectHeader("X-BMS-Tenant", tenant),
		expectHeader("X-K1-Email", email),
		eval(`document.querySelector('#identity-headers tr[data-header="X-K1-Assertion"] .value') ? "yes" : "no"`, func(got string) error {
			if got != "yes" {
				return fmt.Errorf("upstream received no X-K1-Assertion")
			}
			return nil
		}),
		w.expectSessionCookie(),
	}
}

// loginWithLink is flow 2 up to the dashboard: BMS's login page, the
// injected link, K1's forms, and (for users in several tenants) the
// tenant picker.
func (w *world) loginWithLink(user, company, password, pick string) {
	w.t.Helper()
	w.step("bms-login-page", open(w.proxy+"/login"), visible(bmsLoginForm), visible(loginLink), linkState("live"))
	w.step("k1-credentials", actions([]chromedp.Action[chromedp.Void]{click(loginLink)}, w.k1Credentials(user, company, password))...)
	if pick == "" {
		w.step("k1-code", actions(w.k1Code(user), []chromedp.Action[chromedp.Void]{visible("#user-name")})...)
		return
	}
	w.step("k1-code", actions(w.k1Code(user), []chromedp.Action[chromedp.Void]{visible(`button[data-tenant="` + pick + `"]`)})...)
	w.step("tenant-picker", click(`button[data-tenant="`+pick+`"]`), visible("#user-name"))
}

// newTestCA makes a P-256 root valid for 30 days (Caddy wants the root to
// outlive its 7-day intermediate) and writes it into dir.
func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "k1sso e2e root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{certFile: filepath.Join(dir, "root.crt"), keyFile: filepath.Join(dir, "root.key"), pool: x509.NewCertPool()}
	if err := os.WriteFile(ca.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca.pool.AddCert(cert)
	return ca
}

// testCA is a root CA in files Caddy's `pki` reads.
type testCA struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// waitForSite waits (up to 20 s) until the site on 127.0.0.1:port answers
// a TLS handshake for proxyHost with a chain that verifies against the root
// and offers h2, and returns the base64 SHA-256 of its intermediate's
// public key, Chromium's --ignore-certificate-errors-spki-list format.
func (ca *testCA) waitForSite(t *testing.T, port int) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := &tls.Config{ServerName: proxyHost, RootCAs: ca.pool, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: cfg}
		conn, err := d.Dial("tcp", addr)
		if err == nil {
			st := conn.(*tls.Conn).ConnectionState()
			conn.Close()
			if st.NegotiatedProtocol != "h2" {
				t.Fatalf("e2e: the https site negotiated %q, want h2", st.NegotiatedProtocol)
			}
			chain := st.VerifiedChains[0]
			if len(chain) < 3 {
				t.Fatalf("e2e: the https site's chain has %d certificates, want leaf, intermediate and root", len(chain))
			}
			sum := sha256.Sum256(chain[1].RawSubjectPublicKeyInfo)
			return base64.StdEncoding.EncodeToString(sum[:])
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: no verified TLS handshake with %s for %s within 20 s: %v", addr, proxyHost, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// traffic is what the browser sent to and received from every origin,
// recorded from the DevTools network events.
type traffic struct {
	origin string // the proxy, https://localhost:port

	mu        sync.Mutex
	requests  []string // every URL the browser requested
	protocols []string // "<protocol> <url>" of every response from the proxy's host
	toProxy   int      // redirects that landed on the proxy's host
}

// record is a chromedp listener; it only appends, as listeners must.
func (tr *traffic) record(ev any) {
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request == nil {
			return
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.requests = append(tr.requests, e.Request.URL)
		if e.RedirectResponse != nil {
			if tr.onProxyHost(e.RedirectResponse.URL) {
				tr.protocols = append(tr.protocols, e.RedirectResponse.Protocol+" "+e.RedirectResponse.URL)
			}
			if tr.onProxyHost(e.Request.URL) {
				tr.toProxy++
			}
		}
	case *network.EventResponseReceived:
		if e.Response == nil || !tr.onProxyHost(e.Response.URL) {
			return
		}
		tr.mu.Lock()
		tr.protocols = append(tr.protocols, e.Response.Protocol+" "+e.Response.URL)
		tr.mu.Unlock()
	}
}

// onProxyHost reports whether raw is on the proxy's host and port, on any
// scheme.
func (tr *traffic) onProxyHost(raw string) bool {
	u, err := url.Parse(raw)
	p, _ := url.Parse(tr.origin)
	return err == nil && p != nil && u.Host == p.Host
}

// checkHTTPS checks, when an https flow ends, what only https shows: every
// request to the proxy's host was https (so every redirect to it stayed
// https), every URL of the proxy's host carried in a query (redirect_uri,
// post_logout_redirect_uri, target_link_uri, ...) is https, and every
// response of the proxy came over HTTP/2. It runs after a failed step too:
// a hop to http explains a step that waited in vain.
func (w *world) checkHTTPS() {
	t := w.t
	failed := t.Failed()
	tr := &w.traffic
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, raw := range tr.requests {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if tr.onProxyHost(raw) && u.Scheme != "https" {
			t.Errorf("the browser requested %s: not https", withoutQuery(raw))
		}
		for name, values := range u.Query() {
			for _, v := range values {
				if tr.onProxyHost(v) && !strings.HasPrefix(v, tr.origin+"/") {
					t.Errorf("a request to %s carries %s=%s: not on %s", withoutQuery(raw), name, withoutQuery(v), tr.origin)
				}
			}
		}
	}
	for _, p := range tr.protocols {
		if !strings.HasPrefix(p, "h2 ") {
			t.Errorf("the proxy answered over %q, want h2", withoutQuery(p))
		}
	}
	t.Logf("https: %d requests, %d responses of the proxy, %d redirects to it", len(tr.requests), len(tr.protocols), tr.toProxy)
	if !failed && (len(tr.protocols) == 0 || tr.toProxy == 0) {
		t.Errorf("saw %d responses of the proxy and %d redirects to it: the network events were not recorded", len(tr.protocols), tr.toProxy)
	}
}

// expectNoSessionCookie checks that the browser no longer holds k1sso's
// session cookie (a logout expired it; on https the expiry itself must be
// Secure and Path=/ for Chromium to accept it for a __Host- cookie).
func (w *world) expectNoSessionCookie() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		cookies, err := w.proxyCookies(ctx)
		if err != nil {
			return err
		}
		for _, c := range cookies {
			if c.Name == w.sessionCookieName() {
				return fmt.Errorf("the browser still holds %s after the logout", c.Name)
			}
		}
		return nil
	})
}

// expectSessionCookie checks, in Chromium's cookie store, that the browser
// holds k1sso's session cookie with its attributes: HttpOnly, SameSite=Lax,
// Path=/, host-only; on https named __Host-k1sso and Secure, and no k1sso
// cookie without the prefix or without Secure.
func (w *world) expectSessionCookie() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		cookies, err := w.proxyCookies(ctx)
		if err != nil {
			return err
		}
		want := w.sessionCookieName()
		var session *network.Cookie
		var names []string
		for _, c := range cookies {
			names = append(names, c.Name)
			if c.Name == want {
				session = c
			}
			base := strings.TrimPrefix(c.Name, "__Host-")
			if w.https && strings.HasPrefix(base, "k1sso") && (base == c.Name || !c.Secure || c.Path != "/") {
				return fmt.Errorf("cookie %s on https: want the __Host- prefix, Secure and Path=/ (secure=%v path=%s)", c.Name, c.Secure, c.Path)
			}
		}
		if session == nil {
			return fmt.Errorf("no %s cookie in the browser; it holds %v", want, names)
		}
		switch {
		case !session.HTTPOnly:
			return fmt.Errorf("%s is not HttpOnly", want)
		case session.SameSite != network.CookieSameSiteLax:
			return fmt.Errorf("%s has SameSite=%q, want Lax", want, session.SameSite)
		case session.Path != "/" || strings.HasPrefix(session.Domain, ".") || session.Domain != proxyHost:
			return fmt.Errorf("%s has Path=%s Domain=%s, want Path=/ on %s only", want, session.Path, session.Domain, proxyHost)
		case w.https && (!session.Secure || session.SourceScheme != network.CookieSourceSchemeSecure):
			return fmt.Errorf("%s is not Secure (secure=%v, set over %s)", want, session.Secure, session.SourceScheme)
		}
		return nil
	})
}

// proxyCookies reads the proxy's cookies from Chromium's cookie store.
func (w *world) proxyCookies(ctx context.Context) ([]*network.Cookie, error) {
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{w.proxy + "/"}})
	if err != nil {
		return nil, fmt.Errorf("reading cookies: %w", err)
	}
	return res.Cookies, nil
}

// sessionCookieName is k1sso's session cookie on the world's scheme.
func (w *world) sessionCookieName() string {
	if w.https {
		return "__Host-k1sso"
	}
	return "k1sso"
}

// Element ids these flows rely on, besides k1dev's and the demo BMS's own.
const (
	// loginLink is the "Log in with KaseyaOne" link k1sso injects into
	// BMS's login page.
	loginLink = "#k1sso-login-link"
	// launcherIcon is the app launcher icon k1sso injects next to the
	// user's name.
	launcherIcon = "#k1sso-launcher"
	// bmsLoginForm is BMS's own login form.
	bmsLoginForm = `form#login-form[action="/login"]`
)

// linkState checks whether the injected login link is live (a link to
// /.k1sso/login) or shown disabled (aria-disabled, disabled, no href or a
// "disabled" class, with a title that says why).
func linkState(want string) chromedp.Action[chromedp.Void] {
	js := `(() => {
		const a = document.querySelector(` + "`" + loginLink + "`" + `);
		if (!a) return "missing";
		const off = a.getAttribute("aria-disabled") === "true" || a.hasAttribute("disabled") ||
			!a.getAttribute("href") || a.classList.contains("disabled");
		if (off) return a.title ? "disabled" : "disabled without a title";
		return new URL(a.href).pathname === "/.k1sso/login" ? "live" : "live, to " + a.href;
	})()`
	return eval(js, func(got string) error {
		if got != want {
			return fmt.Errorf("login link is %s, want %s", got, want)
		}
		return nil
	})
}

// withoutQuery is raw up to its path: the query may carry a code or a state.
func withoutQuery(raw string) string {
	before, _, _ := strings.Cut(raw, "?")
	return before
}
