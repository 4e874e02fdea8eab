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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
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

// setup is a started proxy configuration (a row of setupTable, or the
// scale run's Caddy): where it listens, its session and its results.
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

	order, err := mainOrder()
	if err != nil {
		return err
	}
	b, err := newBench()
	if b != nil {
		defer b.close()
	}
	if err != nil {
		return err
	}
	setups, err := b.startSetups(order)
	if err != nil {
		return err
	}

	fmt.Printf("# k1sso load benchmark — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("machine: %s\n", machine())
	fmt.Printf("load: wrk -t%d -c%d -d%s, %d interleaved rounds, medians; all on 127.0.0.1\n\n", *threads, *conns, *dur, *rounds)
	if err := b.mainRounds(setups, order); err != nil {
		return err
	}
	printMain(setups, order)
	for _, x := range laterRuns {
		if x.wanted() {
			if err := x.run(b, setups); err != nil {
				return err
			}
		}
	}
	return nil
}

// laterRuns follow the main rounds, in this order, each when its flag
// asks for it.
var laterRuns = []struct {
	wanted func() bool
	run    func(*bench, map[string]*setup) error
}{
	{func() bool { return *pacedDelay > 0 }, pacedRun},
	{func() bool { return *profile != "" }, func(b *bench, setups map[string]*setup) error {
		sb := setups["b"]
		return profileRun(b.wrk, sb, b.opts(sb, *conns, 10*time.Second), "http://"+b.addrs["admin"])
	}},
	{func() bool { return *sessions > 0 }, scaleRuns},
	{func() bool { return *wide > 0 }, wideRun},
	{func() bool { return *loginDur > 0 }, func(b *bench, setups map[string]*setup) error { return loginRun(b, setups["b"]) }},
}

// measure runs wrk once against s and adds the CPU its processes used.
func (b *bench) measure(s *setup, o wrkOpts) (sample, error) {
	before := s.procs.cpu()
	r, out, err := runWrk(b.wrk, o)
	if err != nil {
		return sample{}, err
	}
	if r.Errors > 0 {
		return sample{}, fmt.Errorf("%s: %d failed requests:\n%s", s.name, r.Errors, out)
	}
	cpu := s.procs.cpu() - before
	return sample{wrkResult: r, CPUPer10k: cpu / float64(r.Requests) * 10000}, nil
}

// opts is a plain wrk run against s with its session cookie.
func (b *bench) opts(s *setup, c int, d time.Duration) wrkOpts {
	return wrkOpts{URL: s.url + "/", Conns: c, Threads: *threads, Duration: d, Cookie: s.cookie}
}

// mainRounds warms every setup of order up, then measures them in
// interleaved rounds.
func (b *bench) mainRounds(setups map[string]*setup, order []string) error {
	// Warm-up: connections, caches, the JIT-free but GC-sized heaps.
	for _, k := range order {
		if _, err := b.measure(setups[k], b.opts(setups[k], *conns, time.Second)); err != nil {
			return err
		}
	}
	for r := 0; r < *rounds; r++ {
		for _, k := range order {
			s := setups[k]
			smp, err := b.measure(s, b.opts(s, *conns, *dur))
			if err != nil {
				return err
			}
			s.results = append(s.results, smp)
			fmt.Fprintf(os.Stderr, "round %d %s: %.0f req/s p50 %s p99 %s\n", r+1, k, smp.RPS, smp.P50, smp.P99)
		}
	}
	return nil
}

// scaleRuns runs scaleRun on a Caddy of its own, so its memory is the
// sessions' alone; then on the baseline build (before/after), and when
// asked again with a soft memory limit for Go's GC.
func scaleRuns(b *bench, _ map[string]*setup) error {
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
		ps, err := b.startCaddy("s", sc.bin, b.k1ssoSite("s"), extra...)
		if err != nil {
			return err
		}
		ss := &setup{key: "s", name: "Caddy + k1sso (scale)", url: "http://" + b.addrs["s"], admin: "http://" + b.addrs["sadmin"], procs: group{ps}}
		if err := scaleRun(b, ss, sc.title); err != nil {
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
	return nil
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
func wideRun(b *bench, setups map[string]*setup) error {
	res := map[string][]sample{}
	for r := 0; r < 3; r++ {
		for _, k := range []string{"a", "b"} {
			smp, err := b.measure(setups[k], b.opts(setups[k], *wide, *dur))
			if err != nil {
				return err
			}
			res[k] = append(res[k], smp)
		}
	}
	fmt.Printf("## %d connections (3 interleaved rounds, medians)\n\n", *wide)
	printABTable(setups, res)
	ra := median(res["a"], func(x sample) float64 { return x.RPS })
	rb := median(res["b"], func(x sample) float64 { return x.RPS })
	fmt.Printf("\nb/a throughput at %d connections: %.2f\n\n", *wide, rb/ra)
	return nil
}

// pacedRun compares the latency of (a) and (b) below saturation: each wrk
// connection waits pacedDelay between requests (wrk's delay()), so the
// servers are busy a fraction of the time and latency is the work of a
// request rather than the queue behind it, which at full load grows with
// 1/throughput for either setup.
func pacedRun(b *bench, setups map[string]*setup) error {
	script := filepath.Join(b.dir, "paced.lua")
	lua := fmt.Sprintf("function delay()\n  return %d\nend\n", pacedDelay.Milliseconds())
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return err
	}
	res := map[string][]sample{}
	for r := 0; r < *pacedRounds; r++ {
		for _, k := range []string{"a", "b"} {
			o := b.opts(setups[k], *conns, *dur)
			o.Script = script
			smp, err := b.measure(setups[k], o)
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
func scaleRun(b *bench, sb *setup, title string) error {
	dir := b.dir
	secret, issuer := []byte(b.cookieSecret), b.k1.URL
	script := filepath.Join(dir, "cycle.lua")
	if err := os.WriteFile(script, []byte(cyclerLua), 0o600); err != nil {
		return err
	}
	// Issued two minutes ago: with session_idle_timeout on, the first
	// request of each session already gets its cookie re-issued, as it
	// would for sessions of users who come back, and wrk keeps sending the
	// old cookie: the worst case of the cache's keys per session.
	issued := time.Now().Add(-2 * time.Minute)
	oneCookie, err := caddymodule.MintSessionCookieForBench(secret, issuer, "bms-proxy", "k1|bob", "bob@acme.example", "acme", issued, 8*time.Hour)
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
	if _, err := b.measure(sb, wrkOpts{URL: sb.url + "/", Conns: *conns, Threads: *threads, Duration: *dur, Script: filepath.Join(dir, "cycle.lua"), Args: []string{one, fmt.Sprint(*threads)}}); err != nil {
		return err
	}
	many := filepath.Join(dir, "cookies.txt")
	t0 := time.Now()
	var buf strings.Builder
	for i := 0; i < *sessions; i++ {
		v, err := caddymodule.MintSessionCookieForBench(secret, issuer, "bms-proxy", "k1|bob", "bob@acme.example", "acme", issued, 8*time.Hour)
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
		smp, err := b.measure(sb, o(many, 10*time.Second))
		if err != nil {
			return err
		}
		first = append(first, smp)
		seen += smp.Requests
	}
	var res1, resN []sample
	for r := 0; r < 3; r++ {
		s1, err := b.measure(sb, o(one, *dur))
		if err != nil {
			return err
		}
		sN, err := b.measure(sb, o(many, *dur))
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
func loginRun(b *bench, sb *setup) error {
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
				st, body, err := b.login(newClient(), sb.url+"/.k1sso/login?rd=/")
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
