package caddymodule_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// metricsWorld is the usual world with Caddy's `metrics` global option on
// and the admin endpoint (which serves /metrics) on a free port.
type metricsWorld struct {
	*world
	admin string // http://127.0.0.1:port of Caddy's admin endpoint
}

func newMetricsWorld(t *testing.T) *metricsWorld {
	t.Helper()
	w := &world{k1: k1devtest.Start(t, nil), up: testenv.NewUpstream(t)}
	w.s = testenv.Site{K1: w.k1.URL, Upstream: w.up.URL, Users: testenv.DemoUsers(t)}
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cf := w.s.Caddyfile(t)
	if !strings.Contains(cf, "\tadmin off\n") {
		t.Fatalf("the test site's Caddyfile has no `admin off` line to replace:\n%s", cf)
	}
	cf = strings.Replace(cf, "\tadmin off\n", "\tadmin "+admin+"\n\tmetrics\n", 1)
	if err := testenv.LoadCaddyfile(cf); err != nil {
		t.Fatalf("loading Caddy config: %v\n%s", err, cf)
	}
	// The next test loads a config with `admin off`, which stops this
	// admin endpoint; nothing else to clean up.
	w.px = &testenv.Proxy{URL: fmt.Sprintf("http://127.0.0.1:%d", w.s.Port), Port: w.s.Port, Storage: w.s.Storage}
	testenv.WaitHTTP(t, w.px.URL+"/.k1sso/jwks.json")
	return &metricsWorld{world: w, admin: "http://" + admin}
}

// scrape returns the sum of the samples of a metric whose labels contain
// every one of labels (`name="value"`), read from Caddy's /metrics.
func (m *metricsWorld) scrape(t *testing.T, metric string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(m.admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") && !strings.HasPrefix(line, metric+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// waitMetric waits (up to 5 s) until the metric reaches at least want.
func (m *metricsWorld) waitMetric(t *testing.T, want float64, metric string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := m.scrape(t, metric, labels...)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want >= %v", metric, labels, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMetricsLoginCounterAtCaddyMetrics(t *testing.T) {
	m := newMetricsWorld(t)
	success := []string{`outcome="success"`, `reason="sp_initiated"`}
	before := m.scrape(t, "caddy_k1sso_logins_total", success...)
	k1Before := m.scrape(t, "caddy_k1sso_k1_request_duration_seconds_count", `endpoint="token"`)
	jwksBefore := m.scrape(t, "caddy_k1sso_jwks_refreshes_total")

	_, resp := m.loginAs(t, "bob", "/.k1sso/login?rd=/dashboard")
	if s := testenv.DecodeSeen(t, resp); s.Header.Get("X-BMS-User") != "bob" {
		t.Fatalf("login did not reach the upstream as bob: %v", s.Header)
	}
	if got := m.scrape(t, "caddy_k1sso_logins_total", success...); got != before+1 {
		t.Fatalf("logins_total{outcome=success,reason=sp_initiated} = %v after a login, want %v", got, before+1)
	}
	if got := m.scrape(t, "caddy_k1sso_k1_request_duration_seconds_count", `endpoint="token"`); got < k1Before+1 {
		t.Errorf("k1_request_duration_seconds{endpoint=token} count = %v, want >= %v", got, k1Before+1)
	}
	// Discovery and the JWKS may have been fetched by an earlier test of
	// this process (the K1 client is pooled per issuer); this world's k1dev
	// is new, so its keys were fetched now.
	if got := m.scrape(t, "caddy_k1sso_jwks_refreshes_total"); got < jwksBefore+1 {
		t.Errorf("jwks_refreshes_total = %v, want >= %v", got, jwksBefore+1)
	}
	if got := m.scrape(t, "caddy_k1sso_k1_request_duration_seconds_count", `endpoint="discovery"`); got < 1 {
		t.Errorf("k1_request_duration_seconds{endpoint=discovery} count = %v, want >= 1", got)
	}

	// A refused login counts as a failure with its reason.
	noMatch := []string{`outcome="failure"`, `reason="no_bms_account"`}
	before = m.scrape(t, "caddy_k1sso_logins_total", noMatch...)
	_, resp = m.loginAs(t, "carol", "/.k1sso/login?rd=/dashboard")
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("carol's login: %d, want 403", resp.StatusCode)
	}
	if got := m.scrape(t, "caddy_k1sso_logins_total", noMatch...); got != before+1 {
		t.Fatalf("logins_total{outcome=failure,reason=no_bms_account} = %v, want %v", got, before+1)
	}
}

func TestMetricsReasonLabelIsBounded(t *testing.T) {
	m := newMetricsWorld(t)
	nr := testenv.NoRedirect(nil)
	// K1 error codes come from the browser: invented ones share one label.
	before := m.scrape(t, "caddy_k1sso_logins_total", `reason="k1_error_other"`)
	for i := range 3 {
		resp := get(t, nr, fmt.Sprintf("%s/.k1sso/callback?error=made_up_%d&state=x", m.px.URL, i))
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("callback with error=made_up_%d: %d, want 400", i, resp.StatusCode)
		}
	}
	if got := m.scrape(t, "caddy_k1sso_logins_total", `reason="k1_error_other"`); got != before+3 {
		t.Fatalf(`logins_total{reason="k1_error_other"} = %v, want %v`, got, before+3)
	}
	if got := m.scrape(t, "caddy_k1sso_logins_total", `reason="k1_error_made_up`); got != 0 {
		t.Fatalf("an invented K1 error code became a label value (%v samples)", got)
	}
	resp := get(t, nr, m.px.URL+"/.k1sso/callback?error=access_denied&state=x")
	resp.Body.Close()
	m.waitMetric(t, 1, "caddy_k1sso_logins_total", `reason="k1_error_access_denied"`)
}

func TestMetricsDirectoryReloads(t *testing.T) {
	m := newMetricsWorld(t)
	ok := m.scrape(t, "caddy_k1sso_directory_reloads_total", `result="success"`)
	bad := m.scrape(t, "caddy_k1sso_directory_reloads_total", `result="error"`)
	b, err := os.ReadFile(m.s.Users)
	if err != nil {
		t.Fatal(err)
	}
	// A later modification time and another size: the poller sees a change.
	future := time.Now().Add(2 * time.Second)
	if err := os.WriteFile(m.s.Users, append(b, "dave@acme.example,dave,acme,Acme,\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(m.s.Users, future, future)
	m.waitMetric(t, ok+1, "caddy_k1sso_directory_reloads_total", `result="success"`)

	if err := os.WriteFile(m.s.Users, []byte("not,a,users,file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	future = future.Add(2 * time.Second)
	_ = os.Chtimes(m.s.Users, future, future)
	m.waitMetric(t, bad+1, "caddy_k1sso_directory_reloads_total", `result="error"`)
}

func TestMetricsLogoutAndRevocation(t *testing.T) {
	m := newMetricsWorld(t)
	// Only a sid this deployment issued is revoked: bob's.
	c, _ := m.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	sid := sidOf(t, c, m.px.URL)
	logouts := m.scrape(t, "caddy_k1sso_logouts_total", `kind="frontchannel"`)
	revoked := m.scrape(t, "caddy_k1sso_revocations_total", `kind="sid"`)
	resp := get(t, testenv.NoRedirect(nil), m.px.URL+"/.k1sso/frontchannel-logout?iss="+m.k1.URL+"&sid="+url.QueryEscape(sid))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("front-channel logout: %d", resp.StatusCode)
	}
	if got := m.scrape(t, "caddy_k1sso_logouts_total", `kind="frontchannel"`); got != logouts+1 {
		t.Errorf(`logouts_total{kind="frontchannel"} = %v, want %v`, got, logouts+1)
	}
	if got := m.scrape(t, "caddy_k1sso_revocations_total", `kind="sid"`); got != revoked+1 {
		t.Errorf(`revocations_total{kind="sid"} = %v, want %v`, got, revoked+1)
	}
}
