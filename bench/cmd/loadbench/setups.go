package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

// setupSpec is one row of the setup table: a proxy configuration, what it
// is there to measure, when a run needs it, how to start it and how to get
// a session through it.
type setupSpec struct {
	key, name string
	// measures is what the setup tells apart from the others.
	measures string
	// wanted reports whether this run starts it, given the order of the
	// main rounds.
	wanted func(order []string) bool
	// start starts its processes; the setup listens on b.addrs[key].
	start func(b *bench, key string) (group, error)
	// login returns the Cookie header of bob's session through the
	// started setup; startSetups then checks that it opens the upstream
	// and that nothing else does. nil: the setup gets (b)'s cookie, as a
	// browser sends its cookies either way.
	login func(b *bench, s *setup) (string, error)
}

// setupTable lists the setups in the order they start and log in; -only
// gives the order of the rounds.
var setupTable = []setupSpec{
	{
		key: "a", name: "Caddy reverse_proxy",
		measures: "the floor: Caddy's proxying alone; with (b)'s Cookie header, so (b) − (a) is k1sso's work, not header bytes",
		wanted:   always,
		start:    caddySite(caddyBin, func(b *bench, key string) string { return fmt.Sprintf("\treverse_proxy %s\n", b.upHost) }),
	},
	{
		key: "b", name: "Caddy + k1sso (enforce)",
		measures: "k1sso on every request: the session cookie decrypted and checked, identity headers signed",
		wanted:   always,
		start:    caddyK1sso(caddyBin),
		login:    (*bench).k1ssoLogin,
	},
	{
		key: "h", name: "Caddy reverse_proxy + six static headers",
		measures: "Caddy's cost of forwarding six headers the size of k1sso's identity headers, to tell it from k1sso's own work (on request only: -only abh)",
		wanted:   inOrder("h"),
		start: caddySite(caddyBin, func(b *bench, key string) string {
			return fmt.Sprintf(`	reverse_proxy %s {
		header_up X-K1-Email bob@acme.example
		header_up X-K1-Subject %s
		header_up X-BMS-User bob
		header_up X-BMS-Tenant acme
		header_up X-BMS-Roles none
		header_up X-K1-Assertion %s
	}
`, b.upHost, strings.Repeat("s", 36), strings.Repeat("A", 372))
		}),
	},
	{
		key: "B", name: "Caddy + k1sso, baseline build",
		measures: "(b) on the -baseline binary in the same rounds: the before/after of an optimisation",
		wanted:   func([]string) bool { return *baseline != "" },
		start:    caddyK1sso(baseline),
		login:    (*bench).k1ssoLogin,
	},
	{
		key: "c", name: "Caddy forward_auth → oauth2-proxy",
		measures: "the usual alternative: Caddy asking oauth2-proxy about every request",
		wanted:   inOrder("c"),
		start: func(b *bench, key string) (group, error) {
			po, err := b.oauth2Proxy("oauth2-proxy-c", b.addrs["o2pc"], "http://"+b.addrs[key]+"/oauth2/callback",
				"--upstream=static://202", "--reverse-proxy=true", "--set-xauthrequest=true")
			if err != nil {
				return nil, err
			}
			pc, err := b.startCaddy(key, *caddyBin, b.global(key)+fmt.Sprintf(`http://%s {
	handle /oauth2/* {
		reverse_proxy %s
	}
	handle {
		forward_auth %s {
			uri /oauth2/auth
			copy_headers X-Auth-Request-User X-Auth-Request-Email
		}
		reverse_proxy %s
	}
}
`, b.addrs[key], b.addrs["o2pc"], b.addrs["o2pc"], b.upHost))
			if err != nil {
				return nil, err
			}
			return group{pc, po}, nil
		},
		login: (*bench).oauth2ProxyLogin,
	},
	{
		key: "d", name: "oauth2-proxy reverse proxy",
		measures: "oauth2-proxy alone as the authenticating reverse proxy",
		wanted:   inOrder("d"),
		start: func(b *bench, key string) (group, error) {
			pd, err := b.oauth2Proxy("oauth2-proxy-d", b.addrs[key], "http://"+b.addrs[key]+"/oauth2/callback", "--upstream="+b.upURL+"/")
			if err != nil {
				return nil, err
			}
			return group{pd}, nil
		},
		login: (*bench).oauth2ProxyLogin,
	},
}

// otherAddrs are the addresses that are not a setup's own: oauth2-proxy
// behind (c), the admin endpoint of (b) when profiling, the scale run's
// Caddy and its admin endpoint.
var otherAddrs = []string{"o2pc", "admin", "s", "sadmin"}

func always([]string) bool { return true }

func inOrder(key string) func([]string) bool {
	return func(order []string) bool { return slices.Contains(order, key) }
}

// bench is one run's environment: its directory, wrk, the upstream, k1dev,
// the users file and cookie secret every k1sso site shares, and the
// addresses of every process.
type bench struct {
	dir          string
	wrk          string
	upURL        string
	upHost       string
	k1           *k1devtest.Instance
	users        string
	cookieSecret string
	env          []string // of every Caddy: its config and data under dir
	addrs        map[string]string
}

// newBench checks the binaries and starts what every setup shares: the
// upstream and k1dev.
func newBench() (*bench, error) {
	for _, bin := range []string{*caddyBin, *o2pBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("missing %s (scripts/bench.sh builds it): %w", bin, err)
		}
	}
	wrkPath, err := lookPath(*wrkBin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "k1sso-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{dir: dir, wrk: wrkPath, addrs: map[string]string{},
		cookieSecret: randHex(32), // 64 bytes of text
		env:          []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config"), "XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data")},
	}
	if b.upURL, err = startUpstream(); err != nil {
		return b, err
	}
	b.upHost = strings.TrimPrefix(b.upURL, "http://")
	// oauth2-proxy's callback is registered for loopback (any port,
	// RFC 8252) next to k1sso's.
	cfg := k1dev.DefaultConfig()
	cfg.Clients[0].RedirectURIs = append(cfg.Clients[0].RedirectURIs, "http://127.0.0.1:4180/oauth2/callback")
	if b.k1, err = k1devtest.Serve(cfg); err != nil {
		return b, err
	}
	b.users = filepath.Join(dir, "users.csv")
	if err := os.WriteFile(b.users, []byte("email,bms_user,tenant,tenant_name,roles\nbob@acme.example,bob,acme,Acme,\n"), 0o600); err != nil {
		return b, err
	}
	for _, s := range setupTable {
		if b.addrs[s.key], err = freeAddr(); err != nil {
			return b, err
		}
	}
	for _, k := range otherAddrs {
		if b.addrs[k], err = freeAddr(); err != nil {
			return b, err
		}
	}
	return b, nil
}

// close stops k1dev and removes the run's directory.
func (b *bench) close() {
	if b.k1 != nil {
		_ = b.k1.Close()
	}
	os.RemoveAll(b.dir)
}

// startSetups starts the setups this run needs, in table order, then logs
// in through those that have a login and hands (b)'s cookie to the rest.
func (b *bench) startSetups(order []string) (map[string]*setup, error) {
	setups := map[string]*setup{}
	var started []*setupSpec
	for i := range setupTable {
		spec := &setupTable[i]
		if !spec.wanted(order) {
			continue
		}
		procs, err := spec.start(b, spec.key)
		if err != nil {
			return nil, err
		}
		setups[spec.key] = &setup{key: spec.key, name: spec.name, url: "http://" + b.addrs[spec.key], procs: procs}
		started = append(started, spec)
	}
	for _, spec := range started {
		if spec.login == nil {
			continue
		}
		s := setups[spec.key]
		var err error
		if s.cookie, err = spec.login(b, s); err != nil {
			return nil, err
		}
		if err := checkAccess(s.url, s.cookie); err != nil {
			return nil, err
		}
	}
	for _, spec := range started {
		if spec.login == nil {
			setups[spec.key].cookie = setups["b"].cookie
		}
	}
	return setups, nil
}

// mainOrder is the order of the main rounds: -only, with the baseline
// build (B) right before (b) when there is one.
func mainOrder() ([]string, error) {
	order := strings.Split(*only, "")
	for _, k := range order {
		if !slices.ContainsFunc(setupTable, func(s setupSpec) bool { return s.key == k }) || (k == "B" && *baseline == "") {
			return nil, fmt.Errorf("-only %q: no setup %q (a, b, c, d, h; B comes with -baseline)", *only, k)
		}
	}
	if *baseline != "" && !slices.Contains(order, "B") {
		if i := slices.Index(order, "b"); i >= 0 {
			order = slices.Insert(order, i, "B")
		}
	}
	return order, nil
}

// global is the global options block of the Caddy of key: no admin
// endpoint, except for (b) when profiling and for the scale run, whose Go
// heap figures come from /debug/vars.
func (b *bench) global(key string) string {
	admin := "admin off"
	if key == "b" && *profile != "" {
		admin = "admin " + b.addrs["admin"]
	}
	if key == "s" {
		admin = "admin " + b.addrs["sadmin"]
	}
	return fmt.Sprintf("{\n\t"+admin+"\n\tauto_https off\n\tpersist_config off\n\tstorage file_system %s\n}\n", filepath.Join(b.dir, "storage-"+key))
}

// k1ssoSite is the Caddyfile of a k1sso site at key (enforce, the
// -k1sso-options lines) in front of the upstream.
func (b *bench) k1ssoSite(key string) string {
	return b.global(key) + fmt.Sprintf(`http://%s {
	k1sso {
		issuer %s
		client_id bms-proxy
		client_secret bms-proxy-secret
		cookie_secret %s
		users %s
		enforce
%s	}
	reverse_proxy %s
}
`, b.addrs[key], b.k1.URL, b.cookieSecret, b.users, extraK1ssoLines(*k1ssoOpts), b.upHost)
}

// caddySite starts *bin on a site at key whose body is site.
func caddySite(bin *string, site func(b *bench, key string) string) func(*bench, string) (group, error) {
	return func(b *bench, key string) (group, error) {
		p, err := b.startCaddy(key, *bin, b.global(key)+fmt.Sprintf("http://%s {\n%s}\n", b.addrs[key], site(b, key)))
		if err != nil {
			return nil, err
		}
		return group{p}, nil
	}
}

// caddyK1sso starts *bin on the k1sso site at key.
func caddyK1sso(bin *string) func(*bench, string) (group, error) {
	return func(b *bench, key string) (group, error) {
		p, err := b.startCaddy(key, *bin, b.k1ssoSite(key))
		if err != nil {
			return nil, err
		}
		return group{p}, nil
	}
}

// startCaddy writes caddyfile and runs bin on it until the run ends.
func (b *bench) startCaddy(key, bin, caddyfile string, extraEnv ...string) (*proc, error) {
	path := filepath.Join(b.dir, "Caddyfile."+key)
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(b.dir, "caddy-"+key, b.addrs[key], append(slices.Clone(b.env), extraEnv...), bin, "run", "--config", path, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	return track(p), nil
}

// oauth2Proxy runs oauth2-proxy against k1dev on listen until the run ends.
func (b *bench) oauth2Proxy(name, listen, redirect string, extra ...string) (*proc, error) {
	args := append([]string{
		"--http-address=" + listen,
		"--provider=oidc", "--oidc-issuer-url=" + b.k1.URL,
		"--client-id=bms-proxy", "--client-secret=bms-proxy-secret",
		"--redirect-url=" + redirect,
		"--cookie-secret=" + randHex(16), "--cookie-secure=false",
		"--email-domain=*", "--skip-provider-button=true",
		"--code-challenge-method=S256",
		"--insecure-oidc-allow-unverified-email=true",
		// No per-request access log by default: Caddy's default has
		// none either. -o2p-request-log measures oauth2-proxy as shipped.
		"--request-logging=" + strconv.FormatBool(*o2pReqLog),
	}, extra...)
	p, err := startProc(b.dir, name, listen, nil, *o2pBin, args...)
	if err != nil {
		return nil, err
	}
	return track(p), nil
}

// k1ssoLogin logs bob in through the k1sso proxy of s and returns the
// Cookie header of his session.
func (b *bench) k1ssoLogin(s *setup) (string, error) {
	cl := newClient()
	if st, _, err := b.login(cl, s.url+"/.k1sso/login?rd=/"); err != nil || st != http.StatusOK {
		return "", fmt.Errorf("logging in through k1sso at %s: status %d: %v", s.url, st, err)
	}
	return cookieHeader(cl, s.url, func(n string) bool { return n == "k1sso" })
}

// oauth2ProxyLogin logs bob in through the oauth2-proxy of s and returns
// the Cookie header of its session (without its CSRF cookie).
func (b *bench) oauth2ProxyLogin(s *setup) (string, error) {
	cl := newClient()
	if st, _, err := b.login(cl, s.url+"/oauth2/start?rd=%2F"); err != nil || st != http.StatusOK {
		return "", fmt.Errorf("logging in through %s: status %d: %v", s.name, st, err)
	}
	return cookieHeader(cl, s.url, func(n string) bool { return strings.HasPrefix(n, "_oauth2_proxy") && !strings.Contains(n, "csrf") })
}
