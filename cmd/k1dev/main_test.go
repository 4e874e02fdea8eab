package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// customConfig writes a config whose only users are dave and erin.
func customConfig(t *testing.T, mutate func(*k1dev.Config)) (string, *k1dev.Config) {
	t.Helper()
	cfg := k1dev.DefaultConfig()
	cfg.Users = cfg.Users[1:2]
	cfg.Users[0].Username = "dave"
	erin := cfg.Users[0]
	erin.Username = "erin"
	cfg.Users = append(cfg.Users, erin)
	if mutate != nil {
		mutate(cfg)
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "team.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

// started is a k1dev command running in this process.
type started struct {
	url    string // its issuer, as it logged it
	stderr *syncBuffer
	stop   func() int // ends it and returns its exit status
}

// start runs `k1dev args...` until the test ends and waits for its
// "listening" line.
func start(t *testing.T, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{stderr: &syncBuffer{}}
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, args, &bytes.Buffer{}, s.stderr) }()
	var once sync.Once
	status := -1
	s.stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case status = <-exit:
			case <-time.After(10 * time.Second):
				t.Error("k1dev did not stop within 10 s")
			}
		})
		return status
	}
	t.Cleanup(func() { s.stop() })
	issuerRE := regexp.MustCompile(`issuer=(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := issuerRE.FindStringSubmatch(s.stderr.String()); m != nil && strings.Contains(s.stderr.String(), "k1dev: open ") {
			s.url = m[1]
			return s
		}
		select {
		case code := <-exit:
			t.Fatalf("k1dev %s exited with %d:\n%s", strings.Join(args, " "), code, s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("k1dev %s did not start:\n%s", strings.Join(args, " "), s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr is a free 127.0.0.1 address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTOTPUnknownUser: an unknown user is told which users the loaded
// config has, and (without -config) that -config selects another.
func TestTOTPUnknownUser(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"totp", "-user", "dave"}, &out, &errOut); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	msg := errOut.String()
	for _, want := range []string{`unknown user "dave"`, "demo config", "alice, bob, carol", "-config FILE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}

	path, _ := customConfig(t, nil)
	out.Reset()
	errOut.Reset()
	if code := run(context.Background(), []string{"totp", "-config", path, "-user", "dave"}, &out, &errOut); code != 0 || !regexp.MustCompile(`^\d{6}\n$`).MatchString(out.String()) {
		t.Errorf("totp -config ... -user dave: exit %d, out %q, err %q", code, out.String(), errOut.String())
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"totp", "-config", path, "-user", "alice"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "dave, erin") || !strings.Contains(errOut.String(), path) {
		t.Errorf("totp -config ... -user alice: exit %d, message %q, want the file's users dave, erin", code, errOut.String())
	}
}

// TestBannerNamesConfigUsers: the start banner names the loaded config's
// users and a totp command that reads the same config.
func TestBannerNamesConfigUsers(t *testing.T) {
	path, _ := customConfig(t, nil)
	k := start(t, "-addr", "127.0.0.1:0", "-config", path)
	out := k.stderr.String()
	if !strings.Contains(out, "users: dave, erin ("+path+")") || !strings.Contains(out, "codes: k1dev totp -config "+path+" -user dave") {
		t.Errorf("banner does not name the config's users and its totp command:\n%s", out)
	}
	if strings.Contains(out, "alice") {
		t.Errorf("banner names the demo user alice for a config without her:\n%s", out)
	}
	if code := k.stop(); code != 0 {
		t.Errorf("exit status %d after a clean stop", code)
	}

	demo := start(t, "-addr", "127.0.0.1:0")
	if out := demo.stderr.String(); !strings.Contains(out, "users: alice, bob, carol (the demo config)") || !strings.Contains(out, "codes: k1dev totp -user alice\n") {
		t.Errorf("demo banner:\n%s", out)
	}
}

// TestIssuerTrailingSlash: with -issuer ending in "/", the issuer k1dev
// publishes and logs has no trailing slash, the logged discovery URL has no
// "//", and it answers with that issuer.
func TestIssuerTrailingSlash(t *testing.T) {
	addr := freeAddr(t)
	k := start(t, "-addr", addr, "-issuer", "http://"+addr+"/")
	out := k.stderr.String()
	if strings.Contains(strings.ReplaceAll(out, "://", ""), "//") {
		t.Errorf("log has a // in a URL:\n%s", out)
	}
	m := regexp.MustCompile(`discovery=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no discovery URL logged:\n%s", out)
	}
	resp, err := http.Get(m[1])
	if err != nil {
		t.Fatalf("GET %s: %v", m[1], err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: status %d, %v", resp.StatusCode, err)
	}
	if doc.Issuer != k.url || doc.Issuer != "http://"+addr {
		t.Errorf("published issuer %q, logged %q, want http://%s", doc.Issuer, k.url, addr)
	}
}

// TestCAFileFlag: with -ca-file naming the site's CA, k1dev's back-channel
// logout reaches a site on https that only that CA vouches for; without
// it, it does not; a bad -ca-file stops k1dev with a message naming the flag.
func TestCAFileFlag(t *testing.T) {
	var (
		mu     sync.Mutex
		tokens int
	)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /.k1sso/backchannel-logout", func(w http.ResponseWriter, r *http.Request) {
		if r.PostFormValue("logout_token") != "" {
			mu.Lock()
			tokens++
			mu.Unlock()
		}
	})
	mux.HandleFunc("/", func(http.ResponseWriter, *http.Request) {})
	site := httptest.NewTLSServer(mux)
	t.Cleanup(site.Close)
	ca := filepath.Join(t.TempDir(), "root.crt")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: site.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	path, cfg := customConfig(t, func(c *k1dev.Config) { c.SetClientBaseURL("bms-proxy", site.URL) })

	// loginAndLogout signs dave in to the site through k1dev, then out at
	// K1, and returns how many logout tokens reached the site.
	loginAndLogout := func(args ...string) int {
		t.Helper()
		k := start(t, append([]string{"-addr", "127.0.0.1:0", "-config", path}, args...)...)
		inst := &k1devtest.Instance{URL: k.url, Config: cfg}
		browser := k1devtest.NewClient()
		browser.Transport = site.Client().Transport
		q := url.Values{
			"client_id": {"bms-proxy"}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {site.URL + "/.k1sso/callback"}, "state": {"state-0123456789"}, "nonce": {"nonce-0123456789"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
		}
		resp, err := inst.Login(browser, k.url+"/authorize?"+q.Encode(), "dave", "Acme MSP", "bob-pass")
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		resp.Body.Close()
		if !strings.HasPrefix(resp.Request.URL.String(), site.URL+"/.k1sso/callback?") {
			t.Fatalf("login ended at %s, not the site's callback", resp.Request.URL.Redacted())
		}
		mu.Lock()
		before := tokens
		mu.Unlock()
		resp, err = browser.Get(k.url + "/logout")
		if err != nil {
			t.Fatalf("K1 logout: %v", err)
		}
		resp.Body.Close()
		k.stop()
		mu.Lock()
		defer mu.Unlock()
		return tokens - before
	}
	if n := loginAndLogout(); n != 0 {
		t.Errorf("without -ca-file %d logout tokens reached a site on a CA k1dev does not know", n)
	}
	if n := loginAndLogout("-ca-file", ca); n != 1 {
		t.Errorf("with -ca-file %d logout tokens reached the site, want 1", n)
	}

	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.crt"), path} {
		var errOut bytes.Buffer
		code := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-ca-file", bad}, &bytes.Buffer{}, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "-ca-file") || !strings.Contains(errOut.String(), filepath.Base(bad)) {
			t.Errorf("-ca-file %s: exit %d, message %q", filepath.Base(bad), code, errOut.String())
		}
	}
}

// TestUsage: unknown flags and stray arguments are refused with the usage;
// -h prints it and succeeds.
func TestUsage(t *testing.T) {
	for args, want := range map[string]int{"-nope": 2, "serve": 2, "totp -nope": 2, "-h": 0, "totp -h": 0} {
		var errOut bytes.Buffer
		if code := run(context.Background(), strings.Fields(args), &bytes.Buffer{}, &errOut); code != want || !strings.Contains(errOut.String(), "-ca-file") && args != "serve" {
			t.Errorf("k1dev %s: exit %d, want %d; said %q", args, code, want, errOut.String())
		}
	}
}
