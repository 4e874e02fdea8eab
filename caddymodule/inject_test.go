package caddymodule_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/k1sso/k1sso/examples/bms"
	"github.com/k1sso/k1sso/internal/codingtest"
	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// injected checks that got is want with exactly one snippet inserted at
// want's offset at, and returns the snippet.
func injected(t *testing.T, what string, got []byte, want string, at int) string {
	t.Helper()
	n := len(got) - len(want)
	if n <= 0 || !bytes.HasPrefix(got, []byte(want[:at])) || !bytes.HasSuffix(got, []byte(want[at:])) {
		t.Fatalf("%s: not the page plus one snippet at %d:\n%s", what, at, got)
	}
	return string(got[at : at+n])
}

// checkLength: a rewritten response has no stale Content-Length.
func checkLength(t *testing.T, what string, r raw) {
	t.Helper()
	if r.length >= 0 && r.length != int64(len(r.body)) {
		t.Fatalf("%s: Content-Length %d for %d bytes", what, r.length, len(r.body))
	}
}

func TestInjectLoginLink(t *testing.T) {
	w, _ := injectWorld(t)
	var first string
	for _, enc := range []string{"", "gzip", "zstd", "br"} {
		what := "login page " + enc
		r := fetchRaw(t, nil, "GET", w.px.URL+"/login?enc="+enc, "Accept-Encoding", "gzip, zstd, br")
		if r.status != 200 || r.header.Get("Content-Encoding") != enc {
			t.Fatalf("%s: %d, Content-Encoding %q", what, r.status, r.header.Get("Content-Encoding"))
		}
		checkLength(t, what, r)
		if r.header.Get("ETag") != "" {
			t.Errorf("%s: the upstream's ETag was kept for a changed body", what)
		}
		snip := injected(t, what, decode(t, enc, r.body), loginPage, strings.Index(loginPage, "</body>"))
		if !strings.HasPrefix(snip, "<style>") || !strings.HasSuffix(snip, loginTag) || strings.Contains(snip, "<script") {
			t.Fatalf("%s: snippet %q", what, snip)
		}
		if first == "" {
			first = snip
		} else if snip != first {
			t.Fatalf("%s: snippet differs from the plain one", what)
		}
	}
	// Other pages without a session get nothing.
	if r := fetchRaw(t, nil, "GET", w.px.URL+"/dashboard"); string(r.body) != dashPage {
		t.Fatalf("dashboard without a session changed:\n%s", r.body)
	}
	// Switched off.
	w.s.Options = []string{"inject_login_link off"}
	w.reload(t)
	if r := fetchRaw(t, nil, "GET", w.px.URL+"/login"); string(r.body) != loginPage {
		t.Fatalf("inject_login_link off: page changed:\n%s", r.body)
	}
}

func TestInjectLauncher(t *testing.T) {
	w, _ := injectWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/plain")
	for _, enc := range []string{"", "gzip", "zstd", "br"} {
		what := "dashboard " + enc
		r := fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard?enc="+enc, "Accept-Encoding", "zstd, gzip, br")
		if r.status != 200 || r.header.Get("Content-Encoding") != enc {
			t.Fatalf("%s: %d, Content-Encoding %q", what, r.status, r.header.Get("Content-Encoding"))
		}
		checkLength(t, what, r)
		at := strings.Index(dashPage, `bob</span>`) + len(`bob</span>`)
		snip := injected(t, what, decode(t, enc, r.body), dashPage, at)
		if !strings.HasPrefix(snip, "<style>") || !strings.Contains(snip, launcherTag+` aria-label="KaseyaOne apps">`) ||
			!strings.Contains(snip, "<svg") || !strings.HasSuffix(snip, "</svg></a>") || strings.Contains(snip, "<script") {
			t.Fatalf("%s: snippet %q", what, snip)
		}

		// No #user-name: fixed top right, before </body>.
		what = "plain page " + enc
		r = fetchRaw(t, c.Jar, "GET", w.px.URL+"/plain?enc="+enc, "Accept-Encoding", "zstd, gzip, br")
		checkLength(t, what, r)
		snip = injected(t, what, decode(t, enc, r.body), plainPage, strings.Index(plainPage, "</body>"))
		if !strings.Contains(snip, launcherTag) || !strings.Contains(snip, `class="k1sso-fixed"`) {
			t.Fatalf("%s: snippet %q", what, snip)
		}
	}
	// The same pages without a session are untouched.
	if r := fetchRaw(t, nil, "GET", w.px.URL+"/dashboard"); string(r.body) != dashPage {
		t.Fatalf("dashboard without a session changed")
	}
	w.s.Options = []string{"inject_launcher off"}
	w.reload(t)
	if r := fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard"); string(r.body) != dashPage {
		t.Fatalf("inject_launcher off: page changed")
	}
}

func TestInjectMarkerSplitAcrossWrites(t *testing.T) {
	w, _ := injectWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/plain")
	for _, enc := range []string{"", "gzip"} {
		r := fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard?split=1&enc="+enc, "Accept-Encoding", "gzip")
		at := strings.Index(dashPage, `bob</span>`) + len(`bob</span>`)
		if snip := injected(t, "split "+enc, decode(t, enc, r.body), dashPage, at); !strings.Contains(snip, launcherTag) {
			t.Fatalf("split %s: snippet %q", enc, snip)
		}
		r = fetchRaw(t, nil, "GET", w.px.URL+"/login?split=1&enc="+enc, "Accept-Encoding", "gzip")
		if snip := injected(t, "split login "+enc, decode(t, enc, r.body), loginPage, strings.Index(loginPage, "</body>")); !strings.HasSuffix(snip, loginTag) {
			t.Fatalf("split login %s: snippet %q", enc, snip)
		}
	}
}

// A 10 MB login page, whose marker is at its very end, streams through
// with memory far below its size.
func TestInjectLargePageBoundedMemory(t *testing.T) {
	w, _ := injectWorld(t, "login_path /login/big")
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	read := func() (n int64, tail []byte) {
		resp, err := hc.Get(w.px.URL + "/login/big")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		tw := &tailWriter{max: 4096}
		n, err = io.Copy(tw, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return n, tw.b
	}
	read() // warm up connections and pools
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, tail := read()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if !bytes.Contains(tail, []byte(loginTag+"</body></html>")) {
		t.Fatalf("no login link at the big page's end: %.300s", tail)
	}
	if n <= int64(len(bigPage)) {
		t.Fatalf("big page: %d bytes, page is %d", n, len(bigPage))
	}
	t.Logf("10 MB page (%d bytes) through the proxy and injector: %d bytes allocated in the whole process", len(bigPage), alloc)
	if alloc > 4<<20 {
		t.Fatalf("injecting a %d-byte page allocated %d bytes: the page is buffered", len(bigPage), alloc)
	}
}

func TestInjectLeavesOtherResponsesUntouched(t *testing.T) {
	w, up := injectWorld(t)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/plain")
	for _, tt := range []struct {
		name, method, path string
		hdr                []string
		status             int
	}{
		{"json", "GET", "/data.json", nil, 200},
		{"image", "GET", "/img.png", nil, 200},
		{"event stream", "GET", "/events", nil, 200},
		{"HEAD", "HEAD", "/dashboard", nil, 200},
		{"304", "GET", "/dashboard", []string{"If-None-Match", `"v1"`}, 304},
		{"206", "GET", "/dashboard", []string{"Range", "bytes=0-99"}, 206},
		{"deflate", "GET", "/dashboard?enc=deflate", []string{"Accept-Encoding", "deflate"}, 200},
		{"login HEAD", "HEAD", "/login", nil, 200},
		{"404 page", "GET", "/missing", nil, 404},
	} {
		direct := fetchRaw(t, nil, tt.method, up.URL+tt.path, tt.hdr...)
		r := fetchRaw(t, c.Jar, tt.method, w.px.URL+tt.path, tt.hdr...)
		if r.status != tt.status || direct.status != tt.status {
			t.Errorf("%s: status %d (direct %d), want %d", tt.name, r.status, direct.status, tt.status)
			continue
		}
		if !bytes.Equal(r.body, direct.body) {
			t.Errorf("%s: body changed:\n%q\nwant\n%q", tt.name, r.body, direct.body)
		}
		for _, h := range []string{"Content-Length", "Content-Encoding", "Content-Range", "ETag", "Content-Type"} {
			if r.header.Get(h) != direct.header.Get(h) {
				t.Errorf("%s: %s %q, upstream sent %q", tt.name, h, r.header.Get(h), direct.header.Get(h))
			}
		}
	}
}

func TestInjectAcceptEncoding(t *testing.T) {
	w, _ := injectWorld(t)
	// A page that may be rewritten: only codings the proxy can re-encode.
	r := fetchRaw(t, nil, "GET", w.px.URL+"/login", "Accept-Encoding", "br, deflate, gzip, zstd")
	if got := r.header.Get("X-Seen-Accept-Encoding"); got != "br, gzip, zstd" {
		t.Errorf("login page: upstream saw Accept-Encoding %q, want %q", got, "br, gzip, zstd")
	}
	// Anything else: as the client sent it.
	r = fetchRaw(t, nil, "GET", w.px.URL+"/data.json", "Accept-Encoding", "br, gzip")
	if got := r.header.Get("X-Seen-Accept-Encoding"); got != "br, gzip" {
		t.Errorf("json without a session: upstream saw Accept-Encoding %q", got)
	}
}

func TestInjectUnderCSP(t *testing.T) {
	w, _ := injectWorld(t)
	csp := "default-src 'self'; style-src 'self'; img-src 'none'; frame-ancestors 'none'"
	r := fetchRaw(t, nil, "GET", w.px.URL+"/login?csp="+urlQuery(csp))
	m := nonceRE.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no nonce on the injected style: %s", r.body)
	}
	want := "default-src 'self'; style-src 'self' 'nonce-" + string(m[1]) + "'; img-src 'none'; frame-ancestors 'none'"
	if got := r.header.Get("Content-Security-Policy"); got != want {
		t.Fatalf("CSP\n got %q\nwant %q", got, want)
	}
	// Two responses, two nonces.
	r2 := fetchRaw(t, nil, "GET", w.px.URL+"/login?csp="+urlQuery(csp))
	if m2 := nonceRE.FindSubmatch(r2.body); m2 == nil || string(m2[1]) == string(m[1]) {
		t.Fatal("the nonce is not fresh per response")
	}

	// In a real browser, the injected style applies under the upstream's
	// policy: the login link is styled and the launcher icon has its size.
	ctx := loginPageInChromium(t, w.px.URL+"/login?csp="+urlQuery(csp))
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById('k1sso-login-link')).backgroundColor`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if bg != "rgb(11, 92, 171)" {
		t.Fatalf("login link background under CSP = %q: the injected style was blocked", bg)
	}
}

// loginPageInChromium opens the BMS login page at u in Chromium (closed
// when the test ends) and waits for k1sso's login link on it.
func loginPageInChromium(t *testing.T, u string) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for this test (apt-get install chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)
	for _, a := range []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(u),
		chromedp.WaitVisible(chromedp.CSS("#k1sso-login-link")),
	} {
		if _, err := chromedp.Run(ctx, a); err != nil {
			t.Fatalf("browser: %v", err)
		}
	}
	return ctx
}

// TestInjectCSPNonceNotInDefaultSrc: under an upstream policy of
// default-src 'none' the injected style gets a style-src-elem of its own;
// default-src stays as the upstream sent it, so the nonce never allows a
// script, in every CSP header, enforced or Report-Only. In Chromium the
// style applies and a script carrying the nonce does not run.
func TestInjectCSPNonceNotInDefaultSrc(t *testing.T) {
	w, _ := injectWorld(t)
	r := fetchRaw(t, nil, "GET", w.px.URL+"/login?csp="+urlQuery("default-src 'none'"))
	m := nonceRE.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no nonce on the injected style: %s", r.body)
	}
	nonce := "'nonce-" + string(m[1]) + "'"
	if got, want := r.header.Get("Content-Security-Policy"), "default-src 'none'; style-src-elem "+nonce; got != want {
		t.Fatalf("CSP\n got %q\nwant %q", got, want)
	}

	// Two enforced headers, one with two policies, and a Report-Only one.
	q := "csp=" + urlQuery("default-src 'none'; img-src 'self'") + "&csp=" + urlQuery("default-src 'self'; script-src 'none', default-src 'none'") +
		"&cspro=" + urlQuery("default-src 'none'; report-uri /csp")
	r = fetchRaw(t, nil, "GET", w.px.URL+"/login?"+q)
	m = nonceRE.FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no nonce on the injected style: %s", r.body)
	}
	nonce = "'nonce-" + string(m[1]) + "'"
	want := map[string][]string{
		"Content-Security-Policy": {"default-src 'none'; img-src 'self'; style-src-elem " + nonce,
			"default-src 'self'; script-src 'none'; style-src-elem 'self' " + nonce + ", default-src 'none'; style-src-elem " + nonce},
		"Content-Security-Policy-Report-Only": {"default-src 'none'; report-uri /csp; style-src-elem " + nonce},
	}
	for name, vals := range want {
		if got := r.header.Values(name); strings.Join(got, "\n") != strings.Join(vals, "\n") {
			t.Errorf("%s\n got %q\nwant %q", name, got, vals)
		}
	}

	ctx := loginPageInChromium(t, w.px.URL+"/login?csp="+urlQuery("default-src 'none'"))
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById('k1sso-login-link')).backgroundColor`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if bg != "rgb(11, 92, 171)" {
		t.Fatalf("login link background under default-src 'none' = %q: the injected style was blocked", bg)
	}
	// Markup that learnt the nonce (it is in the page) adds a script with it.
	ran, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const s = document.createElement('script');
		s.nonce = document.querySelector('style[nonce]').nonce;
		s.textContent = 'document.body.dataset.ran = "yes"';
		document.body.appendChild(s);
		return document.body.dataset.ran || "no";
	})()`))
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if ran != "no" {
		t.Fatal("a script carrying the style nonce ran under the upstream's default-src 'none'")
	}
}

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	b   []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "'", "%27", ";", "%3B", "&", "%26", "+", "%2B").Replace(s)
}

// The acceptance check on the demo BMS: its login page carries the link and
// a K1 session's dashboard the launcher after the user's name, plain and
// with Caddy's own encode (gzip, zstd) in the route.
func TestInjectDemoBMS(t *testing.T) {
	up := httptest.NewServer(bms.New(bms.DefaultConfig()))
	t.Cleanup(up.Close)
	w := &world{k1: k1devtest.Start(t, nil)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t)}
	w.px = testenv.StartCaddy(t, w.s)
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	check := func(what, enc string) {
		t.Helper()
		ae := enc
		if ae == "" {
			ae = "identity"
		}
		r := fetchRaw(t, nil, "GET", w.px.URL+"/login", "Accept-Encoding", ae)
		if got := r.header.Get("Content-Encoding"); got != enc {
			t.Fatalf("%s login page: Content-Encoding %q, want %q", what, got, enc)
		}
		checkLength(t, what, r)
		page := decode(t, enc, r.body)
		if n := bytes.Count(page, []byte(loginTag)); n != 1 || !bytes.Contains(page, []byte(loginTag+"\n</body>")) && !bytes.Contains(page, []byte(loginTag+"</body>")) {
			t.Fatalf("%s login page: %d login links, or not at the bottom:\n%s", what, n, page)
		}
		r = fetchRaw(t, c.Jar, "GET", w.px.URL+"/dashboard", "Accept-Encoding", ae)
		checkLength(t, what, r)
		page = decode(t, enc, r.body)
		if !regexp.MustCompile(`<span id="user-name">bob</span><style>[^<]*</style>` + regexp.QuoteMeta(launcherTag)).Match(page) {
			t.Fatalf("%s dashboard: no launcher right after the user's name:\n%s", what, page)
		}
	}
	check("plain", "")
	w.s.Extra = "\tencode gzip zstd"
	w.reload(t)
	check("encode", "gzip")
	check("encode", "zstd")
}

// decode decompresses a body of the content coding enc ("" for none).
func decode(t *testing.T, enc string, b []byte) []byte { return codingtest.Decompress(t, enc, b) }
