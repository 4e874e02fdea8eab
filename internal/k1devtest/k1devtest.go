// Package k1devtest runs a k1dev (development KaseyaOne) for tests and
// drives its login forms:
//
//	k1 := k1devtest.Start(t, nil) // demo data
//	c := k1devtest.NewClient()
//	resp, err := k1.Login(c, proxyURL+"/.k1sso/login", "alice", "Acme MSP", "alice-pass")
package k1devtest

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/k1dev"
)

// Instance is a running k1dev.
type Instance struct {
	// URL is the issuer and base URL, e.g. "http://127.0.0.1:41234".
	URL string
	// Server is the running k1dev (TOTP, RotateKey, SetLandingPage,
	// EndSessions); nil for a k1dev this process did not start (a test of
	// the command), whose codes Login then computes from Config.
	Server *k1dev.Server
	// Config is the configuration it started with; the server holds its own
	// copy, so changing this afterwards has no effect.
	Config *k1dev.Config

	hs *http.Server // nil for an Instance built by hand
}

// code returns username's current TOTP code.
func (i *Instance) code(username string) (string, error) {
	if i.Server != nil {
		return i.Server.TOTP(username)
	}
	for _, u := range i.Config.Users {
		if u.Username == username {
			return k1dev.CurrentCode(u.TOTPSecret)
		}
	}
	return "", fmt.Errorf("k1devtest: unknown user %q", username)
}

// Start runs k1dev on 127.0.0.1 on a free port with cfg (nil means
// k1dev.DefaultConfig()) and opts; the issuer is its URL. It stops when the
// test ends.
func Start(tb testing.TB, cfg *k1dev.Config, opts ...k1dev.Option) *Instance {
	tb.Helper()
	i, err := Serve(cfg, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = i.Close() })
	return i
}

// Serve is Start for a program that is not a test (bench/cmd/loadbench):
// it runs k1dev on a free 127.0.0.1 port until Close.
func Serve(cfg *k1dev.Config, opts ...k1dev.Option) (*Instance, error) {
	if cfg == nil {
		cfg = k1dev.DefaultConfig()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("k1devtest: listening: %w", err)
	}
	u := "http://" + l.Addr().String()
	srv, err := k1dev.New(u, cfg, opts...)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("k1devtest: starting k1dev: %w", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	return &Instance{URL: u, Server: srv, Config: cfg, hs: hs}, nil
}

// Close stops a k1dev that Start or Serve runs; it does nothing for an
// Instance built by hand.
func (i *Instance) Close() error {
	if i.hs == nil {
		return nil
	}
	return i.hs.Close()
}

// NewClient returns an HTTP client with a cookie jar that follows redirects
// (like a browser without JavaScript).
func NewClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: Navigating{}}
}

// Login drives K1's two login forms with c: GET startURL (anything that ends
// on k1dev's login page, e.g. a proxy's /.k1sso/login), fill username,
// company and password, then the current TOTP code, then follow redirects;
// it returns the final response (body unread). If no login form is shown
// (K1 already has a session), it returns that response. A form that comes
// back with an error (wrong password, wrong code, locked) is an error.
func (i *Instance) Login(c *http.Client, startURL, username, company, password string) (*http.Response, error) {
	resp, body, err := fetch(c.Get(startURL))
	if err != nil {
		return nil, err
	}
	f := findForm(body, "username")
	if f == nil {
		return rewind(resp, body), nil
	}
	f.fields.Set("username", username)
	f.fields.Set("company", company)
	f.fields.Set("password", password)
	resp, body, err = fetch(c.PostForm(resolve(resp, f.action), f.fields))
	if err != nil {
		return nil, err
	}
	f = findForm(body, "code")
	if f == nil {
		return rewind(resp, body), fmt.Errorf("k1devtest: password step failed (status %d): %s", resp.StatusCode, pageError(body))
	}
	code, err := i.code(username)
	if err != nil {
		return nil, err
	}
	f.fields.Set("code", code)
	resp, body, err = fetch(c.PostForm(resolve(resp, f.action), f.fields))
	if err != nil {
		return nil, err
	}
	if findForm(body, "code") != nil {
		return rewind(resp, body), fmt.Errorf("k1devtest: code step failed (status %d): %s", resp.StatusCode, pageError(body))
	}
	return rewind(resp, body), nil
}

// fetch reads a response's body.
func fetch(resp *http.Response, err error) (*http.Response, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("k1devtest: reading %s: %w", resp.Request.URL, err)
	}
	return resp, body, nil
}

// rewind gives resp its body back, unread.
func rewind(resp *http.Response, body []byte) *http.Response {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

// resolve makes a form action absolute against the page's URL.
func resolve(resp *http.Response, action string) string {
	u, err := resp.Request.URL.Parse(action)
	if err != nil {
		return action
	}
	return u.String()
}

// Form is an HTML form found by FindForm.
type Form struct {
	action string
	fields url.Values
}

// Action is the form's action attribute (unresolved).
func (f *Form) Action() string { return f.action }

// Fields are the form's input values (hidden ones included).
func (f *Form) Fields() url.Values { return f.fields }

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?is)([a-z_:-]+)\s*=\s*"([^"]*)"`)
	errorRE = regexp.MustCompile(`(?is)<p class="error"[^>]*>(.*?)</p>`)
)

// FindForm returns the first form in page that has an input named field,
// or nil. It understands the plain HTML k1dev writes.
func FindForm(page []byte, field string) *Form { return findForm(page, field) }

func findForm(page []byte, field string) *Form {
	for _, m := range formRE.FindAllSubmatch(page, -1) {
		f := &Form{action: attrs(m[1])["action"], fields: url.Values{}}
		has := false
		for _, in := range inputRE.FindAllSubmatch(m[2], -1) {
			a := attrs(in[1])
			if a["name"] == "" {
				continue
			}
			f.fields.Set(a["name"], a["value"])
			has = has || a["name"] == field
		}
		if has {
			return f
		}
	}
	return nil
}

func attrs(b []byte) map[string]string {
	out := map[string]string{}
	for _, m := range attrRE.FindAllSubmatch(b, -1) {
		out[strings.ToLower(string(m[1]))] = html.UnescapeString(string(m[2]))
	}
	return out
}

// pageError returns the error message shown on a k1dev page.
func pageError(page []byte) string {
	if m := errorRE.FindSubmatch(page); m != nil {
		return html.UnescapeString(string(m[1]))
	}
	return "no login form on the page"
}

// Navigating is a RoundTripper that makes a GET or HEAD without an Accept
// header look like a browser loading a page (Accept: text/html, ...), as the
// proxy sends only navigations to K1 and answers everything else with 401.
// Requests that set Accept or Sec-Fetch-Mode themselves are left alone. Base
// is http.DefaultTransport when nil.
type Navigating struct{ Base http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (n Navigating) RoundTrip(r *http.Request) (*http.Response, error) {
	base := n.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("Accept") == "" && r.Header.Get("Sec-Fetch-Mode") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	}
	return base.RoundTrip(r)
}
