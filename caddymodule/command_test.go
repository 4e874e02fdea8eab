package caddymodule_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// runCaddy runs the built Caddy with args in the repository's top folder
// (the demo Caddyfile names examples/users.csv relative to it) and returns
// stdout, stderr and the exit status.
func runCaddy(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := testenv.CaddyBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = testenv.RepoRoot()
	xdg := t.TempDir()
	cmd.Env = append(append(os.Environ(), "XDG_CONFIG_HOME="+xdg, "XDG_DATA_HOME="+xdg, "HOME="+xdg), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("caddy %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// closedURL returns an http URL on 127.0.0.1 where nothing listens.
func closedURL(t *testing.T) string {
	return "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
}

// demoCaddyfile returns the demo's Caddyfile with its issuer replaced.
func demoCaddyfile(t *testing.T, issuer string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	cf := strings.Replace(string(b), "issuer http://127.0.0.1:9000", "issuer "+issuer, 1)
	if cf == string(b) {
		t.Fatal("the demo Caddyfile has no `issuer http://127.0.0.1:9000` line")
	}
	return cf
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var demoEnv = []string{"K1_CLIENT_ID=bms-proxy", "K1_CLIENT_SECRET=bms-proxy-secret",
	"K1SSO_COOKIE_SECRET=" + testenv.CookieSecret}

// noWarnings fails the test for any log line above info.
func noWarnings(t *testing.T, what, stderr string) {
	t.Helper()
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
			t.Errorf("%s logged: %s", what, l)
		}
	}
}

// TestValidateNeedsNeitherK1NorRedis: `caddy validate` (and `caddy adapt
// --validate`) of the demo Caddyfile and the Redis example pass without a
// warning while K1 and Redis are down: no background work starts for a
// config that is only validated.
func TestValidateNeedsNeitherK1NorRedis(t *testing.T) {
	demo := writeFile(t, "Caddyfile", demoCaddyfile(t, closedURL(t)))
	rb, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "examples", "redis.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	redisCf := strings.ReplaceAll(string(rb), "/etc/k1sso/users.csv", testenv.DemoUsers(t))
	redisFile := writeFile(t, "redis.Caddyfile", redisCf)
	env := append(demoEnv, "K1SSO_REDIS_URL=redis://127.0.0.1:"+strconv.Itoa(testenv.FreePort(t))+"/0")
	for _, file := range []string{demo, redisFile} {
		for _, args := range [][]string{{"validate", "--config", file}, {"adapt", "--validate", "--config", file}} {
			out, stderr, code := runCaddy(t, env, args...)
			if code != 0 {
				t.Fatalf("caddy %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
			}
			if args[0] == "validate" && !strings.Contains(out, "Valid configuration") {
				t.Errorf("caddy validate printed %q", out)
			}
			noWarnings(t, "caddy "+strings.Join(args, " "), stderr)
		}
	}
	// An unset variable behind a secret is named.
	_, stderr, code := runCaddy(t, []string{"K1_CLIENT_ID=bms-proxy", "K1SSO_COOKIE_SECRET=" + testenv.CookieSecret},
		"validate", "--config", demo)
	if code == 0 || !strings.Contains(stderr, "client_secret: required (the environment variable K1_CLIENT_SECRET is unset)") {
		t.Errorf("validate without K1_CLIENT_SECRET: exit %d\n%s", code, stderr)
	}
}

// checkLines runs `caddy k1sso check` and returns the lines marked FAIL
// (by check name) and the exit status; it fails the test when a secret
// shows up in the output.
func checkLines(t *testing.T, cf string, env []string) (fails []string, out string, code int) {
	t.Helper()
	out, stderr, code := runCaddy(t, env, "k1sso", "check", "--config", writeFile(t, "Caddyfile", cf))
	for _, secret := range []string{"bms-proxy-secret", "wrong-secret", testenv.CookieSecret} {
		if strings.Contains(out+stderr, secret) {
			t.Fatalf("check printed a secret:\n%s%s", out, stderr)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "FAIL" {
			fails = append(fails, f[1])
		}
	}
	return fails, out, code
}

// slashIssuer serves k1's discovery document with its issuer ending in
// "/" (k1dev itself trims it): a K1 registered with a trailing slash.
func slashIssuer(t *testing.T, k1 *k1devtest.Instance) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	self := "http://" + l.Addr().String()
	hs := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(k1.URL + "/.well-known/openid-configuration")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		doc["issuer"] = self + "/"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})}
	go func() { _ = hs.Serve(l) }()
	t.Cleanup(func() { _ = hs.Close() })
	return self
}

// TestCheckCommand: `caddy k1sso check` of the demo's Caddyfile against a
// running k1dev passes every line; a wrong client secret, an issuer with a
// trailing "/" too many or too few, and a broken users file each fail on
// their own line with exit status 1.
func TestCheckCommand(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	cf := demoCaddyfile(t, k1.URL)

	fails, out, code := checkLines(t, cf, demoEnv)
	if code != 0 || len(fails) > 0 {
		t.Fatalf("check of a good config: exit %d, failed %v\n%s", code, fails, out)
	}
	for _, want := range []string{"ok    discovery", "ok    client", "ok    users", "ok    store",
		"redirect URI http://localhost:8080/.k1sso/callback", "post-logout redirect URI http://127.0.0.1:8080/login",
		"initiate-login URI http://localhost:8080/.k1sso/initiate", "back-channel logout URI http://localhost:8080/.k1sso/backchannel-logout"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}

	slashURL := slashIssuer(t, k1)

	broken := writeFile(t, "users.csv", "email,bms_user,tenant,tenant_name,roles\nbob@acme.example,bob,acme,Acme,\nnot-an-email,x,acme,Acme,\n")
	cases := []struct {
		name, cf string
		env      []string
		want     string // the one failing check
		detail   string
	}{
		{"wrong client secret", cf, []string{"K1_CLIENT_ID=bms-proxy", "K1_CLIENT_SECRET=wrong-secret",
			"K1SSO_COOKIE_SECRET=" + testenv.CookieSecret}, "client", "invalid_client"},
		{"issuer with a trailing / added", demoCaddyfile(t, k1.URL+"/"), demoEnv, "discovery", "mind a trailing /"},
		{"issuer with the trailing / removed", demoCaddyfile(t, slashURL), demoEnv, "discovery", "mind a trailing /"},
		{"broken users file", strings.Replace(cf, "users examples/users.csv", "users "+broken, 1), demoEnv, "users", "line 3:"},
		// Good syntax that Provision refuses: check reports Provision's error.
		{"a public pattern that is no path", strings.Replace(cf, "users examples/users.csv", "users examples/users.csv\n\t\tpublic static", 1),
			demoEnv, "config", `public: "static" must be a path pattern`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fails, out, code := checkLines(t, c.cf, c.env)
			if code != 1 || len(fails) != 1 || fails[0] != c.want {
				t.Fatalf("want exit 1 and one FAIL line (%s); got exit %d, failed %v\n%s", c.want, code, fails, out)
			}
			if !strings.Contains(out, c.detail) {
				t.Errorf("the %s line does not say %q:\n%s", c.want, c.detail, out)
			}
		})
	}
}

// adminSite runs a Caddy process for site with its admin endpoint on a
// free port and info logs; it returns the process and the admin address.
func adminSite(t *testing.T, site testenv.Site) (*testenv.Process, string) {
	t.Helper()
	admin := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cf := site.Caddyfile(t)
	cf = strings.Replace(cf, "admin off", "admin "+admin, 1)
	cf = strings.Replace(cf, "level ERROR", "level INFO", 1)
	return testenv.RunCaddyfile(t, cf, site.Port), admin
}

// sessionUser returns the X-BMS-User the upstream saw for the cookie at
// base, or "" when the proxy refused the session.
func sessionUser(t *testing.T, base, cookie string) string {
	t.Helper()
	resp := withCookie(t, base, "/x", cookie)
	if resp.StatusCode == http.StatusFound {
		resp.Body.Close()
		return ""
	}
	return testenv.DecodeSeen(t, resp).Header.Get("X-BMS-User")
}

// TestAdminRevokeByEmail: `caddy k1sso revoke --email` through one
// instance's admin API ends bob's sessions on both instances sharing Redis
// within 1 s, and alice's stay; the revoke is one audit line; `caddy k1sso
// status` is OK while Redis is up and fails once the store is out of sync.
func TestAdminRevokeByEmail(t *testing.T) {
	rd := testenv.StartRedis(t)
	k1 := k1devtest.Start(t, nil)
	up := testenv.NewUpstream(t)
	users := testenv.DemoUsers(t)
	site := func() testenv.Site {
		return testenv.Site{K1: k1.URL, Upstream: up.URL, Users: users, Options: []string{"store redis " + rd.URL}}
	}
	a, adminA := adminSite(t, site())
	b, _ := adminSite(t, site())

	login := func(base, user, tenant string) string {
		c := k1devtest.NewClient()
		if _, err := k1.Login(c, base+"/.k1sso/login?rd=/x&tenant="+tenant, user, "Acme MSP", user+"-pass"); err != nil {
			t.Fatal(err)
		}
		ck := cookieOf(c, base, "k1sso")
		if ck == "" {
			t.Fatalf("no session cookie after %s's login", user)
		}
		return ck
	}
	bobA, bobB := login(a.URL, "bob", "acme"), login(b.URL, "bob", "acme")
	alice := login(b.URL, "alice", "acme")
	for _, base := range []string{a.URL, b.URL} {
		for ck, want := range map[string]string{bobA: "bob", bobB: "bob", alice: "alice"} {
			if got := sessionUser(t, base, ck); got != want {
				t.Fatalf("before the revoke, %s serves %q for %s's session", base, got, want)
			}
		}
	}

	out, stderr, code := runCaddy(t, nil, "k1sso", "status", "--address", adminA)
	if code != 0 || !strings.HasPrefix(out, "ok") {
		t.Fatalf("k1sso status: exit %d\n%s%s", code, out, stderr)
	}

	start := time.Now()
	out, stderr, code = runCaddy(t, nil, "k1sso", "revoke", "--email", "Bob@acme.example", "--address", adminA)
	if code != 0 {
		t.Fatalf("k1sso revoke: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("k1sso revoke: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "2 session(s)") { // A has seen both of bob's sessions, not alice's
		t.Errorf("revoke should count bob's two sessions cached at A: %s", out)
	}
	for _, ck := range []string{bobA, bobB} {
		for _, base := range []string{a.URL, b.URL} {
			for sessionUser(t, base, ck) != "" {
				if time.Since(start) > 3*time.Second {
					t.Fatalf("%s still serves bob's session 3 s after the revoke", base)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	took := time.Since(start)
	t.Logf("both instances refused both of bob's sessions %s after the revoke command started", took)
	if took >= time.Second {
		t.Errorf("bob's sessions ended after %s; want < 1s", took)
	}
	for _, base := range []string{a.URL, b.URL} {
		if got := sessionUser(t, base, alice); got != "alice" {
			t.Errorf("after revoking bob, %s serves %q for alice's session", base, got)
		}
	}
	// A new login of bob works again: from the next second on, since the
	// revocation covers sessions issued up to the second it was made in.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	if got := sessionUser(t, b.URL, login(b.URL, "bob", "acme")); got != "bob" {
		t.Errorf("bob's new session after the revoke: %q", got)
	}

	audit := 0
	for _, l := range strings.Split(a.Output(), "\n") {
		if strings.Contains(l, `"logger":"admin.api.k1sso"`) && strings.Contains(l, `"msg":"revocation"`) {
			audit++
			var m map[string]any
			if err := json.Unmarshal([]byte(l[strings.Index(l, "{"):]), &m); err != nil || m["email"] != "bob@acme.example" || m["kind"] != "email" {
				t.Errorf("audit line: %s", l)
			}
		}
	}
	if audit != 1 {
		t.Errorf("want one audit line at A, got %d:\n%s", audit, a.Output())
	}

	// Bad requests are refused with 400.
	for _, args := range [][]string{{"--email", "bob@acme.example", "--sub", "x"}, {"--email", "not-an-email"}} {
		if _, _, code := runCaddy(t, nil, append([]string{"k1sso", "revoke", "--address", adminA}, args...)...); code == 0 {
			t.Errorf("k1sso revoke %v succeeded", args)
		}
	}

	rd.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, code = runCaddy(t, nil, "k1sso", "status", "--address", adminA)
		if code == 1 && strings.Contains(out, "store not in sync") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status with Redis down for 15 s: exit %d\n%s", code, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestFailedLoginLogsK1Error: with a wrong client secret the log line of
// the failed login carries K1's invalid_client, the page calls it a
// configuration problem, and "Sign in again" keeps the target.
func TestFailedLoginLogsK1Error(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	up := testenv.NewUpstream(t)
	site := testenv.Site{K1: k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t)}
	cf := strings.Replace(site.Caddyfile(t), "client_secret bms-proxy-secret", "client_secret wrong-secret", 1)
	cf = strings.Replace(cf, "level ERROR", "level INFO", 1)
	p := testenv.RunCaddyfile(t, cf, site.Port)

	c := k1devtest.NewClient()
	resp, err := k1.Login(c, p.URL+"/.k1sso/login?rd=/reports%3Fy%3D1", "bob", "Acme MSP", "bob-pass")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	page := body.String()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "configuration problem") {
		t.Errorf("the page of the failed login: %d\n%s", resp.StatusCode, page)
	}
	if !strings.Contains(page, `href="/.k1sso/login?rd=%2freports%3fy%3d1"`) && !strings.Contains(page, `href="/.k1sso/login?rd=%2Freports%3Fy%3D1"`) {
		t.Errorf("Sign in again does not keep the target /reports?y=1:\n%s", page)
	}
	// The log reaches the test through a pipe: wait for the line.
	var line string
	for deadline := time.Now().Add(5 * time.Second); line == "" && time.Now().Before(deadline); {
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, `"msg":"login"`) && strings.Contains(l, `"outcome":"failure"`) {
				line = l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(line, `"reason":"token_exchange_refused"`) || !strings.Contains(line, `"k1_error":"invalid_client"`) {
		t.Fatalf("the failed login's log line lacks invalid_client: %q\n%s", line, p.Output())
	}
	if strings.Contains(p.Output(), "wrong-secret") {
		t.Error("the log holds the client secret")
	}
}

// TestHelpAndSecret: `caddy help k1sso` lists the subcommands, and `caddy
// k1sso secret` prints a fresh secret long enough for cookie_secret.
func TestHelpAndSecret(t *testing.T) {
	out, stderr, code := runCaddy(t, nil, "help", "k1sso")
	if code != 0 {
		t.Fatalf("caddy help k1sso: exit %d\n%s", code, stderr)
	}
	for _, sub := range []string{"check", "secret", "revoke", "status"} {
		if !strings.Contains(out, "\n  "+sub+" ") {
			t.Errorf("caddy help k1sso does not list %s:\n%s", sub, out)
		}
	}
	a, _, _ := runCaddy(t, nil, "k1sso", "secret")
	b, _, _ := runCaddy(t, nil, "k1sso", "secret")
	if a = strings.TrimSpace(a); len(a) < 32 || a == strings.TrimSpace(b) {
		t.Errorf("caddy k1sso secret printed %q and then %q", a, b)
	}
}
