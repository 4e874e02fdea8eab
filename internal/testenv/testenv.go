// Package testenv runs the real parts of k1sso's tests: Caddy with the
// module (in-process, or as the built binary for multi-instance tests), and a
// recording upstream. Everything listens on 127.0.0.1 only.
//
//	k1 := k1devtest.Start(t, nil)
//	up := testenv.NewUpstream(t)
//	px := testenv.StartCaddy(t, testenv.Site{K1: k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t)})
package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/k1devtest"
)

// CookieSecret is a test cookie secret (>= 32 bytes).
const CookieSecret = "test-cookie-secret-0123456789abcdef"

// RepoRoot returns the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// DemoUsers copies examples/users.csv into a temp dir and returns its path,
// so a test may rewrite it.
func DemoUsers(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(), "examples", "users.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "users.csv")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Site describes a Caddy site with the k1sso handler in front of an upstream.
type Site struct {
	Port     int    // 0: a free port
	K1       string // issuer URL
	Upstream string // upstream URL (http://127.0.0.1:port)
	Users    string // users CSV path
	Storage  string // storage folder; "" = a temp dir
	// Options are extra lines inside the k1sso block (e.g. "enforce").
	Options []string
	// Secrets are the cookie secrets; nil = CookieSecret.
	Secrets []string
	// Extra is raw Caddyfile text added to the site block after k1sso.
	Extra string
}

// Proxy is a running Caddy site.
type Proxy struct {
	URL     string // http://127.0.0.1:port
	Port    int
	Storage string
}

var siteTmpl = template.Must(template.New("site").Parse(`{
	admin off
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	http_port {{.Port}}
	storage file_system {{.Storage}}
	log {
		level {{.LogLevel}}
		output stderr
	}
}

http://127.0.0.1:{{.Port}} {
	k1sso {
		issuer {{.K1}}
		client_id bms-proxy
		client_secret bms-proxy-secret
		cookie_secret{{range .Secrets}} {{.}}{{end}}
		users {{.Users}}
{{range .Options}}		{{.}}
{{end}}	}
{{.Extra}}
	reverse_proxy {{.UpstreamHost}}
}
`))

// Caddyfile renders the Caddyfile of a site (filling Port and Storage).
func (s *Site) Caddyfile(tb testing.TB) string {
	tb.Helper()
	if s.Port == 0 {
		s.Port = FreePort(tb)
	}
	if s.Storage == "" {
		s.Storage = tb.TempDir()
	}
	if s.Secrets == nil {
		s.Secrets = []string{CookieSecret}
	}
	level := "ERROR"
	if os.Getenv("K1SSO_TEST_LOG") != "" {
		level = "DEBUG"
	}
	var b bytes.Buffer
	err := siteTmpl.Execute(&b, map[string]any{
		"Port": s.Port, "Storage": s.Storage, "K1": s.K1, "Users": s.Users, "Options": s.Options,
		"Secrets": s.Secrets, "Extra": s.Extra, "UpstreamHost": strings.TrimPrefix(s.Upstream, "http://"), "LogLevel": level,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

var caddyMu sync.Mutex

// StartCaddy runs the site in this process (one config per process at a
// time: tests using it must not run in parallel). A later StartCaddy
// replaces the config, as a reload does.
func StartCaddy(tb testing.TB, s Site) *Proxy {
	tb.Helper()
	cf := s.Caddyfile(tb)
	if err := LoadCaddyfile(cf); err != nil {
		tb.Fatalf("loading Caddy config: %v\n%s", err, cf)
	}
	tb.Cleanup(func() { _ = caddy.Stop() })
	p := &Proxy{URL: fmt.Sprintf("http://127.0.0.1:%d", s.Port), Port: s.Port, Storage: s.Storage}
	WaitHTTP(tb, p.URL+"/.k1sso/jwks.json")
	return p
}

// LoadCaddyfile adapts a Caddyfile and loads it into this process's Caddy.
func LoadCaddyfile(cf string) error {
	caddyMu.Lock()
	defer caddyMu.Unlock()
	cfg, err := AdaptCaddyfile(cf)
	if err != nil {
		return err
	}
	if err := caddy.Load(cfg, true); err != nil {
		return err
	}
	// A load stops the old config's servers, closing their connections,
	// but Caddy returns once their shutdown has started: a test client may
	// still reuse a pooled connection of an old server, or have its first
	// new one closed unanswered (an EOF, seen after a reload onto the same
	// port under load). So drop every pooled connection, then wait until
	// each listener answers a request on a connection of its own.
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	return probeListeners(cfg)
}

// probeListeners asks every listener of cfg's HTTP servers for
// /.k1sso/jwks.json (k1sso answers it itself, so no upstream sees the
// probe; any status will do) on a connection used once, until each has
// answered or 5s have passed.
func probeListeners(cfg []byte) error {
	var c struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string `json:"listen"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(5 * time.Second)
	for _, srv := range c.Apps.HTTP.Servers {
		for _, l := range srv.Listen {
			na, err := caddy.ParseNetworkAddress(l)
			if err != nil || na.Network != "tcp" {
				continue
			}
			for p := uint(0); p < na.PortRangeSize(); p++ {
				host, port, _ := net.SplitHostPort(na.JoinHostPort(p))
				if host == "" {
					host = "127.0.0.1"
				}
				u := "http://" + net.JoinHostPort(host, port) + "/.k1sso/jwks.json"
				for {
					resp, err := client.Get(u)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						break
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("the reloaded server at %s does not answer: %v", u, err)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
	}
	return nil
}

// AdaptCaddyfile turns Caddyfile text into Caddy JSON.
func AdaptCaddyfile(cf string) ([]byte, error) {
	ad := caddyconfig.GetAdapter("caddyfile")
	cfg, warn, err := ad.Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return nil, err
	}
	for _, w := range warn {
		if strings.Contains(w.Message, "k1sso") {
			return nil, fmt.Errorf("adapt warning: %s", w.Message)
		}
	}
	return cfg, nil
}

// WaitHTTP waits until url answers at all (any status), up to 10 s.
func WaitHTTP(tb testing.TB, url string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not come up: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Seen is one request as the upstream received it.
type Seen struct {
	Method string
	Path   string
	Header http.Header
	// Trailer holds the request trailers that arrived after the body.
	Trailer http.Header `json:",omitempty"`
}

// Upstream is a recording upstream: it answers every request with the JSON
// of the request's method, path and headers, and remembers the requests.
type Upstream struct {
	URL string
	srv *httptest.Server
	mu  sync.Mutex
	all []Seen
}

// NewUpstream starts a recording upstream on 127.0.0.1.
func NewUpstream(tb testing.TB) *Upstream {
	u := &Upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Trailers arrive only once the body is read to its end.
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		s := Seen{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Trailer: r.Trailer.Clone()}
		u.mu.Lock()
		u.all = append(u.all, s)
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	tb.Cleanup(u.srv.Close)
	u.URL = u.srv.URL
	return u
}

// Requests returns what the upstream received so far.
func (u *Upstream) Requests() []Seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Seen(nil), u.all...)
}

// Reset forgets the recorded requests.
func (u *Upstream) Reset() {
	u.mu.Lock()
	u.all = nil
	u.mu.Unlock()
}

// DecodeSeen reads an upstream answer.
func DecodeSeen(tb testing.TB, resp *http.Response) Seen {
	tb.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var s Seen
	if err := json.Unmarshal(b, &s); err != nil {
		tb.Fatalf("not an upstream answer (status %d, url %s): %.300s", resp.StatusCode, resp.Request.URL, b)
	}
	return s
}

// NoRedirect returns a client that keeps cookies in jar but does not follow
// redirects.
func NoRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: 15 * time.Second, Transport: k1devtest.Navigating{}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}
