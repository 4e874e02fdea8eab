// Command loadbench measures what an authenticated request costs through
// k1sso against bare Caddy and Caddy + oauth2-proxy, on loopback with wrk:
//
//	(a) Caddy reverse_proxy → upstream
//	(b) Caddy + k1sso (enforce), a real session cookie → upstream
//	(c) Caddy forward_auth → oauth2-proxy, a real session → upstream
//	(d) oauth2-proxy as the reverse proxy → upstream
//
// in interleaved rounds (a b c d a b c d …) and prints medians, then the
// scale runs: 100,000 distinct sessions, 1,000 connections and complete
// logins per second. Everything listens on 127.0.0.1; every loop is bounded.
// scripts/bench.sh builds the binaries and runs it.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/k1dev"
)

// upstreamMarker starts the upstream's body, so checks can tell it from
// a proxy's own pages.
const upstreamMarker = "k1sso-bench-upstream "

var (
	caddyBin    = flag.String("caddy", "bin/caddy", "Caddy with the k1sso module")
	o2pBin      = flag.String("oauth2-proxy", "bin/oauth2-proxy", "oauth2-proxy v7.15.6")
	wrkBin      = flag.String("wrk", "wrk", "wrk")
	rounds      = flag.Int("rounds", 7, "interleaved rounds of a b c d")
	dur         = flag.Duration("duration", 4*time.Second, "length of one wrk run")
	conns       = flag.Int("conns", 32, "wrk connections")
	threads     = flag.Int("threads", 1, "wrk threads (one drives these rates with about a tenth of a core; a second only competes with the servers for the two cores)")
	sessions    = flag.Int("sessions", 100_000, "distinct sessions of the scale run (0 skips it)")
	wide        = flag.Int("wide", 1000, "connections of the wide run (0 skips it)")
	loginDur    = flag.Duration("login-duration", 10*time.Second, "length of the login throughput run (0 skips it)")
	loginPar    = flag.Int("login-workers", 8, "concurrent logins")
	only        = flag.String("only", "abcd", "setups of the main rounds (add h: bare Caddy setting six static headers the size of k1sso's)")
	profile     = flag.String("profile", "", "write a CPU profile of (b) under load to this file (pprof through Caddy's admin endpoint on 127.0.0.1)")
	memLimit    = flag.String("scale-gomemlimit", "", "repeat the scale run on a Caddy with this GOMEMLIMIT, e.g. 120MiB (empty: no repeat)")
	o2pReqLog   = flag.Bool("o2p-request-log", false, "run oauth2-proxy with its per-request log on (its default) instead of off")
	pacedRounds = flag.Int("paced-rounds", 3, "interleaved rounds of the light-load latency run")
	pacedDelay  = flag.Duration("paced-delay", 10*time.Millisecond, "think time of each connection in the light-load latency run of (a) and (b) (0 skips it)")
	k1ssoOpts   = flag.String("k1sso-options", "", "extra lines of the k1sso block of (b), (B) and the scale run, separated by ';', e.g. 'session_idle_timeout 30m; recheck_interval 15m; expiry_notice 5m'")
	baseline    = flag.String("baseline", "", "a second Caddy binary run as setup (B), k1sso like (b), in the same rounds: before/after of an optimisation")
)

func main() {
	flag.Parse()
	// k1dev logs every login; the harness does thousands.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// setup is one proxy configuration under test.
type setup struct {
	key, name string
	url       string
	cookie    string
	procs     group
	admin     string // Caddy's admin endpoint, when it has one
	results   []sample
}

// sample is one round of one setup.
type sample struct {
	wrkResult
	CPUPer10k float64 // CPU seconds of the proxy processes per 10k requests
}

var children []*proc
var childMu sync.Mutex

func track(p *proc) *proc {
	childMu.Lock()
	children = append(children, p)
	childMu.Unlock()
	return p
}

func stopAll() {
	childMu.Lock()
	defer childMu.Unlock()
	for _, p := range children {
		p.stop()
	}
	children = nil
}

func run() error {
	defer stopAll()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; stopAll(); os.Exit(130) }()

	for _, b := range []string{*caddyBin, *o2pBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("missing %s (scripts/bench.sh builds it): %w", b, err)
		}
	}
	wrkPath, err := lookPath(*wrkBin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "k1sso-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	upURL, err := startUpstream()
	if err != nil {
		return err
	}
	k1URL, k1srv, err := startK1dev()
	if err != nil {
		return err
	}
	users := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(users, []byte("email,bms_user,tenant,tenant_name,roles\nbob@acme.example,bob,acme,Acme,\n"), 0o600); err != nil {
		return err
	}
	cookieSecret := randHex(32) // 64 bytes of text
	env := []string{"XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config"), "XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data")}

	addrs := map[string]string{}
	for _, k := range []string{"a", "b", "B", "c", "d", "h", "o2pc", "admin", "s", "sadmin"} {
		if addrs[k], err = freeAddr(); err != nil {
			return err
		}
	}
	upHost := strings.TrimPrefix(upURL, "http://")
	global := func(name string) string {
		admin := "admin off"
		if name == "b" && *profile != "" {
			admin = "admin " + addrs["admin"]
		}
		if name == "s" { // its Go heap figures come from /debug/vars
			admin = "admin " + addrs["sadmin"]
		}
		return fmt.Sprintf("{\n\t"+admin+"\n\tauto_https off\n\tpersist_config off\n\tstorage file_system %s\n}\n", filepath.Join(dir, "storage-"+name))
	}
	k1ssoSite := func(k string) string {
		return global(k) + fmt.Sprintf(`http://%s {
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
`, addrs[k], k1URL, cookieSecret, users, extraK1ssoLines(*k1ssoOpts), upHost)
	}
	caddyfiles := map[string]string{
		"a": global("a") + fmt.Sprintf("http://%s {\n\treverse_proxy %s\n}\n", addrs["a"], upHost),
		"b": k1ssoSite("b"),
		// (h), on request only (-only abh): bare Caddy setting six static
		// headers the size of k1sso's identity headers, to tell Caddy's
		// cost of forwarding them from k1sso's own work.
		"h": global("h") + fmt.Sprintf(`http://%s {
	reverse_proxy %s {
		header_up X-K1-Email bob@acme.example
		header_up X-K1-Subject %s
		header_up X-BMS-User bob
		header_up X-BMS-Tenant acme
		header_up X-BMS-Roles none
		header_up X-K1-Assertion %s
	}
}
`, addrs["h"], upHost, strings.Repeat("s", 36), strings.Repeat("A", 372)),
		"B": k1ssoSite("B"),
		"s": k1ssoSite("s"),
		"c": global("c") + fmt.Sprintf(`http://%s {
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
`, addrs["c"], addrs["o2pc"], addrs["o2pc"], upHost),
	}
	startBin := func(key, bin string, extraEnv ...string) (*proc, error) {
		path := filepath.Join(dir, "Caddyfile."+key)
		if err := os.WriteFile(path, []byte(caddyfiles[key]), 0o600); err != nil {
			return nil, err
		}
		p, err := startProc(dir, "caddy-"+key, addrs[key], append(env, extraEnv...), bin, "run", "--config", path, "--adapter", "caddyfile")
		if err != nil {
			return nil, err
		}
		return track(p), nil
	}
	start := func(key string, extraEnv ...string) (*proc, error) {
		if key == "B" {
			return startBin(key, *baseline, extraEnv...)
		}
		return startBin(key, *caddyBin, extraEnv...)
	}
	o2p := func(name, listen, redirect string, extra ...string) (*proc, error) {
		args := append([]string{
			"--http-address=" + listen,
			"--provider=oidc", "--oidc-issuer-url=" + k1URL,
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
		p, err := startProc(dir, name, listen, nil, *o2pBin, args...)
		if err != nil {
			return nil, err
		}
		return track(p), nil
	}

	setups := map[string]*setup{}
	pa, err := start("a")
	if err != nil {
		return err
	}
	setups["a"] = &setup{key: "a", name: "Caddy reverse_proxy", url: "http://" + addrs["a"], procs: group{pa}}

	// k1ssoSetup starts a k1sso build and logs in through it.
	k1ssoSetup := func(key, name string) (*setup, error) {
		p, err := start(key)
		if err != nil {
			return nil, err
		}
		s := &setup{key: key, name: name, url: "http://" + addrs[key], procs: group{p}}
		setups[key] = s
		if s.cookie, err = k1ssoLogin(k1srv, s.url); err != nil {
			return nil, err
		}
		return s, checkAccess(s.url, s.cookie)
	}
	sb, err := k1ssoSetup("b", "Caddy + k1sso (enforce)")
	if err != nil {
		return err
	}
	// (a) gets the same Cookie header: a browser sends it either way, so
	// the difference between (a) and (b) is k1sso's work, not header bytes.
	setups["a"].cookie = sb.cookie
	order := strings.Split(*only, "")
	if slices.Contains(order, "h") {
		ph, err := start("h")
		if err != nil {
			return err
		}
		setups["h"] = &setup{key: "h", name: "Caddy reverse_proxy + six static headers", url: "http://" + addrs["h"], cookie: sb.cookie, procs: group{ph}}
	}
	if *baseline != "" {
		if _, err := k1ssoSetup("B", "Caddy + k1sso, baseline build"); err != nil {
			return err
		}
		if i := slices.Index(order, "b"); i >= 0 {
			order = slices.Insert(order, i, "B")
		}
	}

	po, err := o2p("oauth2-proxy-c", addrs["o2pc"], "http://"+addrs["c"]+"/oauth2/callback",
		"--upstream=static://202", "--reverse-proxy=true", "--set-xauthrequest=true")
	if err != nil {
		return err
	}
	pc, err := start("c")
	if err != nil {
		return err
	}
	sc := &setup{key: "c", name: "Caddy forward_auth → oauth2-proxy", url: "http://" + addrs["c"], procs: group{pc, po}}
	setups["c"] = sc
	pd, err := o2p("oauth2-proxy-d", addrs["d"], "http://"+addrs["d"]+"/oauth2/callback", "--upstream="+upURL+"/")
	if err != nil {
		return err
	}
	sd := &setup{key: "d", name: "oauth2-proxy reverse proxy", url: "http://" + addrs["d"], procs: group{pd}}
	setups["d"] = sd
	isO2P := func(n string) bool { return strings.HasPrefix(n, "_oauth2_proxy") && !strings.Contains(n, "csrf") }
	for _, s := range []*setup{sc, sd} {
		cl := newClient()
		if st, _, err := login(k1srv, cl, s.url+"/oauth2/start?rd=%2F", "bob", "Acme MSP", "bob-pass"); err != nil || st != http.StatusOK {
			return fmt.Errorf("logging in through %s: status %d: %v", s.name, st, err)
		}
		if s.cookie, err = cookieHeader(cl, s.url, isO2P); err != nil {
			return err
		}
	}
	for _, k := range []string{"c", "d"} {
		if err := checkAccess(setups[k].url, setups[k].cookie); err != nil {
			return err
		}
	}

	fmt.Printf("# k1sso load benchmark — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: %s\n", machine())
	fmt.Printf("load: wrk -t%d -c%d -d%s, %d interleaved rounds, medians; all on 127.0.0.1\n\n", *threads, *conns, *dur, *rounds)

	measure := func(s *setup, o wrkOpts) (sample, error) {
		before := s.procs.cpu()
		r, out, err := runWrk(wrkPath, o)
		if err != nil {
			return sample{}, err
		}
		if r.Errors > 0 {
			return sample{}, fmt.Errorf("%s: %d failed requests:\n%s", s.name, r.Errors, out)
		}
		cpu := s.procs.cpu() - before
		return sample{wrkResult: r, CPUPer10k: cpu / float64(r.Requests) * 10000}, nil
	}
	opts := func(s *setup, c int, d time.Duration) wrkOpts {
		return wrkOpts{URL: s.url + "/", Conns: c, Threads: *threads, Duration: d, Cookie: s.cookie}
	}
	// Warm-up: connections, caches, the JIT-free but GC-sized heaps.
	for _, k := range order {
		if _, err := measure(setups[k], opts(setups[k], *conns, time.Second)); err != nil {
			return err
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, k := range order {
			s := setups[k]
			smp, err := measure(s, opts(s, *conns, *dur))
			if err != nil {
				return err
			}
			s.results = append(s.results, smp)
			fmt.Fprintf(os.Stderr, "round %d %s: %.0f req/s p50 %s p99 %s\n", r+1, k, smp.RPS, smp.P50, smp.P99)
		}
	}
	printMain(setups, order)
	if *pacedDelay > 0 && setups["a"] != nil && setups["b"] != nil {
		if err := pacedRun(dir, setups, measure, opts); err != nil {
			return err
		}
	}

	if *profile != "" {
		if err := profileRun(wrkPath, sb, opts(sb, *conns, 10*time.Second), "http://"+addrs["admin"]); err != nil {
			return err
		}
	}

	if *sessions > 0 {
		// A Caddy of its own, so its memory is the sessions' alone; then
		// the baseline build (before/after), and when asked again with a
		// soft memory limit for Go's GC.
		type scaleCase struct{ title, bin, limit string }
		cases := []scaleCase{{"", *caddyBin, ""}}
		if *baseline != "" {
			cases = append(cases, scaleCase{", baseline build " + *baseline, *baseline, ""})
		}
		if *memLimit != "" {
			cases = append(cases, scaleCase{", Caddy with GOMEMLIMIT=" + *memLimit, *caddyBin, *memLimit})
		}
		for _, sc := range cases {
			var extra []string
			if sc.limit != "" {
				extra = []string{"GOMEMLIMIT=" + sc.limit}
			}
			ps, err := startBin("s", sc.bin, extra...)
			if err != nil {
				return err
			}
			ss := &setup{key: "s", name: "Caddy + k1sso (scale)", url: "http://" + addrs["s"], admin: "http://" + addrs["sadmin"], procs: group{ps}}
			if err := scaleRun(dir, ss, []byte(cookieSecret), k1URL, sc.title, measure); err != nil {
				return err
			}
			ps.stop()
			// The next Caddy reuses the address: wait for this one to go.
			for i := 0; i < 50; i++ {
				if _, err := cpuSeconds(ps.pid()); err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if *wide > 0 {
		if err := wideRun(setups, measure, opts); err != nil {
			return err
		}
	}
	if *loginDur > 0 {
		if err := loginRun(k1srv, sb); err != nil {
			return err
		}
	}
	return nil
}

type measureFunc func(*setup, wrkOpts) (sample, error)

// k1ssoLogin logs bob in through the k1sso proxy at url, against k1dev,
// and returns the Cookie header of his session.
func k1ssoLogin(k1srv *k1dev.Server, url string) (string, error) {
	cl := newClient()
	if st, _, err := login(k1srv, cl, url+"/.k1sso/login?rd=/", "bob", "Acme MSP", "bob-pass"); err != nil || st != http.StatusOK {
		return "", fmt.Errorf("logging in through k1sso at %s: status %d: %v", url, st, err)
	}
	return cookieHeader(cl, url, func(n string) bool { return n == "k1sso" })
}

func printMain(setups map[string]*setup, order []string) {
	fmt.Println("| setup | req/s | p50 | p99 | CPU s / 10k req | peak RSS | wrk CPU s / 10k req |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, k := range order {
		s := setups[k]
		fmt.Printf("| (%s) %s | %.0f | %s | %s | %.3f | %.1f MB | %.3f |\n", k, s.name,
			median(s.results, func(x sample) float64 { return x.RPS }),
			ms(median(s.results, func(x sample) float64 { return float64(x.P50) })),
			ms(median(s.results, func(x sample) float64 { return float64(x.P99) })),
			median(s.results, func(x sample) float64 { return x.CPUPer10k }),
			float64(s.procs.mem("VmHWM"))/1024,
			median(s.results, func(x sample) float64 { return x.CPU / float64(x.Requests) * 10000 }))
	}
	fmt.Println()
	rps := func(k string) float64 {
		if setups[k] == nil || len(setups[k].results) == 0 {
			return 0
		}
		return median(setups[k].results, func(x sample) float64 { return x.RPS })
	}
	p99 := func(k string) float64 {
		if setups[k] == nil || len(setups[k].results) == 0 {
			return 0
		}
		return median(setups[k].results, func(x sample) float64 { return float64(x.P99) })
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	if rps("a") > 0 && rps("b") > 0 {
		fmt.Printf("b/a throughput: %.2f (target ≥ 0.90: %s)\n", rps("b")/rps("a"), verdict(rps("b")/rps("a") >= 0.90))
		d := time.Duration(p99("b") - p99("a"))
		fmt.Printf("p99 b − a: %s (target ≤ 0.2 ms: %s); p99 across rounds: a %s, b %s\n", ms(float64(d)), verdict(d <= 200*time.Microsecond),
			p99Range(setups["a"].results), p99Range(setups["b"].results))
	}
	cpu := func(k string) float64 {
		if setups[k] == nil || len(setups[k].results) == 0 {
			return 0
		}
		return median(setups[k].results, func(x sample) float64 { return x.CPUPer10k })
	}
	if cpu("b") > 0 {
		var parts []string
		for _, k := range []string{"a", "h", "B", "c", "d"} {
			if cpu(k) > 0 {
				parts = append(parts, fmt.Sprintf("%s/b %.2f", k, cpu(k)/cpu("b")))
			}
		}
		fmt.Printf("proxy CPU per request, against (b): %s (less noisy than req/s on a busy machine)\n", strings.Join(parts, ", "))
	}
	if rps("h") > 0 && rps("b") > 0 {
		fmt.Printf("b/h throughput (k1sso against bare Caddy forwarding the same header bytes): %.2f\n", rps("b")/rps("h"))
	}
	if rps("B") > 0 && rps("b") > 0 {
		fmt.Printf("b/B throughput (this build against the baseline build): %.2f\n", rps("b")/rps("B"))
	}
	if rps("c") > 0 && rps("b") > 0 {
		fmt.Printf("b/c throughput: %.2f (target ≥ 3.0: %s)\n", rps("b")/rps("c"), verdict(rps("b")/rps("c") >= 3.0))
	}
	if rps("d") > 0 && rps("b") > 0 {
		fmt.Printf("b/d throughput: %.2f (target ≥ 2.5: %s)\n", rps("b")/rps("d"), verdict(rps("b")/rps("d") >= 2.5))
	}
	fmt.Println()
}

// wideRun compares (a) and (b) at many connections, interleaved.
func wideRun(setups map[string]*setup, measure measureFunc, opts func(*setup, int, time.Duration) wrkOpts) error {
	res := map[string][]sample{}
	for r := 0; r < 3; r++ {
		for _, k := range []string{"a", "b"} {
			smp, err := measure(setups[k], opts(setups[k], *wide, *dur))
			if err != nil {
				return err
			}
			res[k] = append(res[k], smp)
		}
	}
	fmt.Printf("## %d connections (3 interleaved rounds, medians)\n\n", *wide)
	printABTable(setups, res)
	a := median(res["a"], func(x sample) float64 { return x.RPS })
	b := median(res["b"], func(x sample) float64 { return x.RPS })
	fmt.Printf("\nb/a throughput at %d connections: %.2f\n\n", *wide, b/a)
	return nil
}

// pacedRun compares the latency of (a) and (b) below saturation: each wrk
// connection waits pacedDelay between requests (wrk's delay()), so the
// servers are busy a fraction of the time and latency is the work of a
// request rather than the queue behind it, which at full load grows with
// 1/throughput for either setup.
func pacedRun(dir string, setups map[string]*setup, measure measureFunc, opts func(*setup, int, time.Duration) wrkOpts) error {
	script := filepath.Join(dir, "paced.lua")
	lua := fmt.Sprintf("function delay()\n  return %d\nend\n", pacedDelay.Milliseconds())
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return err
	}
	res := map[string][]sample{}
	for r := 0; r < *pacedRounds; r++ {
		for _, k := range []string{"a", "b"} {
			o := opts(setups[k], *conns, *dur)
			o.Script = script
			smp, err := measure(setups[k], o)
			if err != nil {
				return err
			}
			res[k] = append(res[k], smp)
		}
	}
	fmt.Printf("\n## Latency below saturation: (a) and (b), %d connections each waiting %s between requests (%d interleaved rounds, medians)\n\n", *conns, *pacedDelay, *pacedRounds)
	printABTable(setups, res)
	d := time.Duration(median(res["b"], func(x sample) float64 { return float64(x.P99) }) - median(res["a"], func(x sample) float64 { return float64(x.P99) }))
	p50 := time.Duration(median(res["b"], func(x sample) float64 { return float64(x.P50) }) - median(res["a"], func(x sample) float64 { return float64(x.P50) }))
	fmt.Printf("\np99 b − a below saturation: %s, p50 b − a: %s (target ≤ 0.2 ms: %s); p99 across rounds: a %s, b %s\n\n", ms(float64(d)), ms(float64(p50)),
		map[bool]string{true: "met", false: "MISSED"}[d <= 200*time.Microsecond], p99Range(res["a"]), p99Range(res["b"]))
	return nil
}

// scaleRun cycles many distinct valid sessions through (b), against the
// same Lua cycler with one cookie so wrk's own scripting cost is equal.
func scaleRun(dir string, sb *setup, secret []byte, issuer, title string, measure measureFunc) error {
	script := filepath.Join(dir, "cycle.lua")
	if err := os.WriteFile(script, []byte(cyclerLua), 0o600); err != nil {
		return err
	}
	oneCookie, err := caddymodule.MintSessionCookieForBench(secret, issuer, "bms-proxy", "k1|bob", "bob@acme.example", "acme", 8*time.Hour)
	if err != nil {
		return err
	}
	sb.cookie = "k1sso=" + oneCookie
	if err := checkAccess(sb.url, sb.cookie); err != nil {
		return err
	}
	one := filepath.Join(dir, "one-cookie.txt")
	if err := os.WriteFile(one, []byte(sb.cookie+"\n"+sb.cookie+"\n"), 0o600); err != nil {
		return err
	}
	rssIdle := sb.procs.mem("VmRSS")
	if _, err := measure(sb, wrkOpts{URL: sb.url + "/", Conns: *conns, Threads: *threads, Duration: *dur, Script: filepath.Join(dir, "cycle.lua"), Args: []string{one, fmt.Sprint(*threads)}}); err != nil {
		return err
	}
	many := filepath.Join(dir, "cookies.txt")
	t0 := time.Now()
	var buf strings.Builder
	for i := 0; i < *sessions; i++ {
		v, err := caddymodule.MintSessionCookieForBench(secret, issuer, "bms-proxy", "k1|bob", "bob@acme.example", "acme", 8*time.Hour)
		if err != nil {
			return err
		}
		buf.WriteString("k1sso=" + v + "\n")
	}
	if err := os.WriteFile(many, []byte(buf.String()), 0o600); err != nil {
		return err
	}
	minted := time.Since(t0)
	o := func(file string, d time.Duration) wrkOpts {
		return wrkOpts{URL: sb.url + "/", Conns: *conns, Threads: *threads, Duration: d, Script: script, Args: []string{file, fmt.Sprint(*threads)}}
	}
	rssBefore := sb.procs.mem("VmRSS")
	heapBefore, err := goHeap(sb.admin)
	if err != nil {
		return err
	}
	// First sight of every cookie: decrypt, verify, sign an assertion. Run
	// until each was seen once (bounded to 6 runs).
	var first []sample
	var seen int64
	for i := 0; i < 6 && seen < int64(*sessions); i++ {
		smp, err := measure(sb, o(many, 10*time.Second))
		if err != nil {
			return err
		}
		first = append(first, smp)
		seen += smp.Requests
	}
	var res1, resN []sample
	for r := 0; r < 3; r++ {
		s1, err := measure(sb, o(one, *dur))
		if err != nil {
			return err
		}
		sN, err := measure(sb, o(many, *dur))
		if err != nil {
			return err
		}
		res1, resN = append(res1, s1), append(resN, sN)
	}
	rssAfter := sb.procs.mem("VmRSS")
	hwm := sb.procs.mem("VmHWM")
	heapAfter, err := goHeap(sb.admin)
	if err != nil {
		return err
	}
	r1 := median(res1, func(x sample) float64 { return x.RPS })
	rN := median(resN, func(x sample) float64 { return x.RPS })
	fmt.Printf("## (b) with %d distinct sessions%s (wrk Lua cycler, 3 interleaved rounds, medians)\n\n", *sessions, title)
	fmt.Printf("minted %d session cookies in %s\n\n", *sessions, minted.Round(time.Millisecond))
	fmt.Println("| cookies | req/s | p50 | p99 | CPU s / 10k req |")
	fmt.Println("|---|---:|---:|---:|---:|")
	printRow("1 (same cycler)", res1)
	printRow(fmt.Sprintf("%d, all cached", *sessions), resN)
	printRow(fmt.Sprintf("%d, first sight (%d requests)", *sessions, seen), first)
	fmt.Printf("\n%d sessions / one cookie throughput: %.2f (target ≥ 0.80: %s)\n", *sessions, rN/r1, map[bool]string{true: "met", false: "MISSED"}[rN/r1 >= 0.8])
	fmt.Printf("proxy RSS (a Caddy process of its own): %.1f MB idle, %.1f MB after one cookie, %.1f MB after %d sessions, peak %.1f MB (target ≤ 150 MB: %s)\n\n",
		float64(rssIdle)/1024, float64(rssBefore)/1024, float64(rssAfter)/1024, *sessions, float64(hwm)/1024, map[bool]string{true: "met", false: "MISSED"}[hwm <= 150*1024])
	fmt.Printf("Go heap after a forced GC: %.1f MB live after one cookie, %.1f MB after %d sessions (%.0f B per session); heap goal %.1f MB, Go runtime total (Sys) %.1f MB\n\n",
		heapBefore.live/1e6, heapAfter.live/1e6, *sessions, (heapAfter.live-heapBefore.live)/float64(*sessions), heapAfter.goal/1e6, heapAfter.sys/1e6)
	return nil
}

// heapStats are Go heap figures of a Caddy process.
type heapStats struct{ live, goal, sys float64 }

// goHeap forces GCs in the Caddy behind admin (pprof's heap?gc=1) and then
// reads its runtime.MemStats from /debug/vars: the live heap, the next GC
// goal and all memory the Go runtime holds.
func goHeap(admin string) (heapStats, error) {
	c := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) ([]byte, error) {
		resp, err := c.Get(admin + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", path, resp.Status)
		}
		return b, err
	}
	// Twice: the first GC moves sync.Pool contents to the victim cache,
	// the second frees them.
	for range 2 {
		if _, err := get("/debug/pprof/heap?gc=1"); err != nil {
			return heapStats{}, err
		}
	}
	b, err := get("/debug/vars")
	if err != nil {
		return heapStats{}, err
	}
	var v struct {
		Memstats struct{ HeapAlloc, NextGC, Sys float64 } `json:"memstats"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return heapStats{}, fmt.Errorf("/debug/vars: %w", err)
	}
	return heapStats{live: v.Memstats.HeapAlloc, goal: v.Memstats.NextGC, sys: v.Memstats.Sys}, nil
}

// loginRun counts complete logins per second through (b): /.k1sso/login,
// K1's password and TOTP forms, the callback, the upstream page.
func loginRun(srv *k1dev.Server, sb *setup) error {
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var lat []float64
	deadline := time.Now().Add(*loginDur)
	const maxLogins = 20_000
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < *loginPar; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ok.Load()+failed.Load() < maxLogins {
				t := time.Now()
				st, body, err := login(srv, newClient(), sb.url+"/.k1sso/login?rd=/", "bob", "Acme MSP", "bob-pass")
				if err != nil || st != http.StatusOK || !strings.HasPrefix(string(body), upstreamMarker) {
					failed.Add(1)
					continue
				}
				ok.Add(1)
				mu.Lock()
				lat = append(lat, float64(time.Since(t)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	slices.Sort(lat)
	p50 := 0.0
	if len(lat) > 0 {
		p50 = lat[len(lat)/2]
	}
	fmt.Printf("## Logins through (b)\n\n%d complete logins (K1 password + TOTP, callback, upstream page) in %s with %d workers: %.1f logins/s, p50 %s per login, %d failed\n\n",
		ok.Load(), el.Round(time.Millisecond), *loginPar, float64(ok.Load())/el.Seconds(), ms(p50), failed.Load())
	if ok.Load() == 0 {
		return errors.New("no login succeeded")
	}
	return nil
}

func median(xs []sample, f func(sample) float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// printABTable prints the medians of setups (a) and (b) from res.
func printABTable(setups map[string]*setup, res map[string][]sample) {
	fmt.Println("| setup | req/s | p50 | p99 | CPU s / 10k req |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, k := range []string{"a", "b"} {
		printRow(fmt.Sprintf("(%s) %s", k, setups[k].name), res[k])
	}
}

// printRow prints one table row: the medians of req/s, p50, p99 and CPU.
func printRow(name string, xs []sample) {
	fmt.Printf("| %s | %.0f | %s | %s | %.3f |\n", name,
		median(xs, func(x sample) float64 { return x.RPS }),
		ms(median(xs, func(x sample) float64 { return float64(x.P50) })),
		ms(median(xs, func(x sample) float64 { return float64(x.P99) })),
		median(xs, func(x sample) float64 { return x.CPUPer10k }))
}

// p99Range is the lowest and highest p99 of a setup's rounds: how much the
// same setup varies on this machine.
func p99Range(xs []sample) string {
	if len(xs) == 0 {
		return "-"
	}
	lo, hi := xs[0].P99, xs[0].P99
	for _, x := range xs {
		lo, hi = min(lo, x.P99), max(hi, x.P99)
	}
	return fmt.Sprintf("%.1f–%.1f ms", float64(lo)/1e6, float64(hi)/1e6)
}

func ms(ns float64) string { return fmt.Sprintf("%.3f ms", ns/1e6) }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n*2]
}

// startUpstream serves 200 with a 1 KB body on 127.0.0.1.
func startUpstream() (string, error) {
	body := []byte(upstreamMarker + strings.Repeat("x", 1024-len(upstreamMarker)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

// startK1dev runs the demo K1 with oauth2-proxy's callback registered for
// loopback (any port, RFC 8252) next to k1sso's.
func startK1dev() (string, *k1dev.Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	u := "http://" + l.Addr().String()
	cfg := k1dev.DefaultConfig()
	cfg.Clients[0].RedirectURIs = append(cfg.Clients[0].RedirectURIs, "http://127.0.0.1:4180/oauth2/callback")
	srv, err := k1dev.New(u, cfg)
	if err != nil {
		l.Close()
		return "", nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	return u, srv, nil
}

func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("wrk not found (scripts/bench.sh installs it with apt-get): %w", err)
	}
	return p, nil
}

// machine describes the CPU and memory the numbers come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		mem = strings.Join(strings.Fields(line)[1:], " ")
	}
	return fmt.Sprintf("%d CPUs (%s), MemTotal %s, %s %s/%s", runtime.NumCPU(), model, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// profileRun loads (b) for 10 s and saves an 8 s CPU profile of its Caddy.
func profileRun(wrkPath string, sb *setup, o wrkOpts, admin string) error {
	done := make(chan error, 1)
	go func() { _, _, err := runWrk(wrkPath, o); done <- err }()
	time.Sleep(time.Second)
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(admin + "/debug/pprof/profile?seconds=8")
	if err != nil {
		return fmt.Errorf("fetching the CPU profile: %w", err)
	}
	defer resp.Body.Close()
	f, err := os.Create(*profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	fmt.Printf("CPU profile of (b) under load: %s (go tool pprof -top bin/caddy %s)\n\n", *profile, *profile)
	return nil
}

// extraK1ssoLines turns -k1sso-options into lines of the k1sso block.
func extraK1ssoLines(opts string) string {
	var b strings.Builder
	for _, o := range strings.Split(opts, ";") {
		if o = strings.TrimSpace(o); o != "" {
			b.WriteString("\t\t" + o + "\n")
		}
	}
	return b.String()
}
