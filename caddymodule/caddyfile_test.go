package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy" // the docs example proxies
)

// adaptFixtures are Caddyfiles with the exact JSON they adapt to, in the
// format of Caddy's caddytest/integration/caddyfile_adapt: the Caddyfile, a
// line of ten dashes, the JSON.
const adaptFixtures = "testdata/caddyfile_adapt/*.caddyfiletest"

// readAdaptFixture splits a fixture into its Caddyfile and its JSON.
func readAdaptFixture(t *testing.T, file string) (cf, want string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cf, want, ok := strings.Cut(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n----------\n")
	if !ok {
		t.Fatalf("%s: no ---------- line between the Caddyfile and the JSON", file)
	}
	return strings.TrimSpace(cf) + "\n", strings.TrimSpace(want)
}

// adapt adapts a Caddyfile as `caddy adapt` does and indents the JSON as
// caddytest.CompareAdapt does. Any warning fails: the fixtures are
// formatted and use nothing deprecated.
func adapt(t *testing.T, name, cf string) string {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": name})
	if err != nil {
		t.Fatalf("adapting %s: %v", name, err)
	}
	for _, w := range warnings {
		t.Errorf("%s:%d: warning: %s", name, w.Line, w.Message)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestCaddyfileAdapt adapts every fixture and compares the JSON exactly.
// The secrets' variables are set, so a placeholder expanded at adapt time
// would show in the JSON.
func TestCaddyfileAdapt(t *testing.T) {
	for _, v := range []string{"K1_CLIENT_SECRET", "K1_CLIENT_ID", "NEW_SECRET", "OLD_SECRET", "OLDEST_SECRET", "K1SSO_COOKIE_SECRET", "K1SSO_REDIS_URL"} {
		t.Setenv(v, "bms-proxy-secret")
	}
	files, err := filepath.Glob(adaptFixtures)
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures %s: %v", adaptFixtures, err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cf, want := readAdaptFixture(t, file)
			got := adapt(t, filepath.Base(file), cf)
			if got != want {
				t.Errorf("adapted JSON differs at %s\nwhole JSON:\n%s", firstDifference(got, want), got)
			}
			if strings.Contains(got, "bms-proxy-secret") {
				t.Error("a secret was expanded into the JSON config")
			}
		})
	}
}

// firstDifference names the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, gl, wl)
		}
	}
	return "no line"
}

// TestCaddyfileAdaptCoversDocumentedOptions: every option in
// docs/options.md is used by a fixture, every option a fixture uses is
// documented, and the example of docs/caddyfile.md is a fixture as it is
// printed.
func TestCaddyfileAdaptCoversDocumentedOptions(t *testing.T) {
	doc, err := os.ReadFile("../docs/options.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	if len(documented) < 20 {
		t.Fatalf("found only %d options in docs/options.md: %v", len(documented), documented)
	}
	used := map[string]bool{}
	files, _ := filepath.Glob(adaptFixtures)
	for _, file := range files {
		cf, _ := readAdaptFixture(t, file)
		d := caddyfile.NewTestDispenser(cf)
		for d.Next() {
			if d.Val() != "k1sso" {
				continue
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				used[d.Val()] = true
				d.RemainingArgs()
			}
		}
	}
	for _, opt := range documented {
		if !used[opt] {
			t.Errorf("option %s of docs/options.md is in no fixture", opt)
		}
	}
	for opt := range used {
		if !slices.Contains(documented, opt) {
			t.Errorf("option %s of a fixture is not in docs/options.md", opt)
		}
	}
	md, err := os.ReadFile("../docs/caddyfile.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```caddyfile\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("no caddyfile example in docs/caddyfile.md")
	}
	if cf, _ := readAdaptFixture(t, "testdata/caddyfile_adapt/docs_example.caddyfiletest"); cf != string(m[1]) {
		t.Errorf("docs_example.caddyfiletest is not the example of docs/caddyfile.md:\n%s", m[1])
	}
}

// TestCaddyfileErrors: syntax errors are refused while parsing and name
// the option and the file and line.
func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{minimal + "\tbogus 1\n}", `unknown option "bogus"`},
		{minimal + "\tissuer http://y\n}", "option issuer given twice"},
		{minimal + "\tenforce yes\n}", "enforce takes no value"},
		{minimal + "\trequire_mfa on\n}", "require_mfa takes no value"},
		{minimal + "\tenforce {\n\t\tx\n\t}\n}", "enforce takes no block"},
		{minimal + "\tlogin_path\n}", "login_path takes exactly one value"},
		{minimal + "\tlogin_path /a /b\n}", "login_path takes exactly one value"},
		{minimal + "\tsession_lifetime soon\n}", `session_lifetime: "soon" is not a positive duration`},
		{minimal + "\tsession_lifetime -1h\n}", `session_lifetime: "-1h" is not a positive duration`},
		{minimal + "\tlogin_timeout 0s\n}", `login_timeout: "0s" is not a positive duration`},
		{minimal + "\tlogin_timeout 1m 2m\n}", "login_timeout takes exactly one duration"},
		{minimal + "\theader X-Only\n}", "header takes a name and a value"},
		{minimal + "\theader X-A b c\n}", "header takes a name and a value"},
		{"k1sso extra {\n}", "wrong argument count"},
		{minimal + "\tcookie_secret\n}", "cookie_secret needs at least one secret"},
		{minimal + "\tpublic\n}", "public needs at least one path pattern"},
		{minimal + "\tscopes\n}", "scopes needs at least one scope"},
		{minimal + "\tupstream_cookies\n}", "upstream_cookies needs at least one cookie name"},
		{minimal + "\tupstream_cookies A\n\tupstream_cookies B\n}", "option upstream_cookies given twice"},
		{minimal + "\tstore redis\n}", "redis needs exactly one URL"},
		{minimal + "\tstore memcached x\n}", "no store module http.handlers.k1sso.stores.memcached is registered"},
		{minimal + "\tstore caddy extra\n}", "store caddy takes no argument"},
		{minimal + "\tinject_launcher maybe\n}", "inject_launcher takes on or off"},
		{minimal + "\tintegration_default perhaps\n}", "integration_default takes on or off"},
		{minimal + "\tclock_skew -1s\n}", `clock_skew: "-1s" is not a duration of 0s or more`},
		{minimal + "\tclock_skew soon\n}", `clock_skew: "soon" is not a duration of 0s or more`},
		{minimal + "\tclock_skew\n}", "clock_skew takes exactly one duration"},
		{minimal + "\tclock_skew 1m 2m\n}", "clock_skew takes exactly one duration"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%q: error %v does not name the file and line", tc.in, err)
		}
	}
}

// TestCaddyfileSemanticErrors: a block that is good syntax but a bad
// config parses, and its JSON is refused by Provision's checks
// (checkOptions), naming the option. So a JSON config gets every one of
// these checks too.
func TestCaddyfileSemanticErrors(t *testing.T) {
	t.Setenv("K1_CLIENT_SECRET", "bms-proxy-secret")
	t.Setenv("NEW_SECRET", strings.Repeat("n", 32))
	t.Setenv("OLD_SECRET", strings.Repeat("o", 32))
	for _, tc := range []struct{ in, want string }{
		{minimal + "}", ""},
		{"k1sso {\n}", "issuer: required"},
		{"k1sso {\n\tissuer http://x\n}", "client_id: required"},
		{"k1sso {\n\tissuer http://x\n\tclient_id a\n}", "client_secret: required"},
		{"k1sso {\n\tissuer http://x\n\tclient_id a\n\tclient_secret b\n}", "cookie_secret: required"},
		{"k1sso {\n\tissuer http://x\n\tclient_id a\n\tclient_secret b\n\tcookie_secret {env.NEW_SECRET}\n}", "users: required"},
		{minimal + "\theader X-BMS-User evil\n}", "header: X-BMS-User is an identity header"},
		{minimal + "\theader x_k1_email evil\n}", "is an identity header"},
		{minimal + "\tpublic static\n}", `public: "static" must be a path pattern`},
		{minimal + "\tpublic /static/* {http.vars.x}\n}", `public: "{http.vars.x}" must be a path pattern`},
		{minimal + "\tupstream_cookies BMS;SESSION\n}", `upstream_cookies: "BMS;SESSION" is not a cookie name`},
		{minimal + "\tupstream_cookies ok bad;name\n}", `upstream_cookies: "bad;name" is not a cookie name`},
		{minimal + "\tlogout_path //evil\n}", `logout_path: "//evil" must be a local path`},
		{minimal + "\tlogout_path logout\n}", `logout_path: "logout" must be a local path`},
		{minimal + "\tclock_skew 1h\n}", "clock_skew: 1h0m0s is more than 10m"},
		{minimal + "\tclock_skew 11m\n}", "clock_skew: 11m0s is more than 10m"},
		{minimal + "\tclock_skew 10m\n}", ""},
		{minimal + "\tsession_idle_timeout 30s\n}", "session_idle_timeout: 30s is too short (minimum 1m)"},
		{minimal + "\tsession_lifetime 30s\n}", "session_lifetime: 30s is too short (minimum 1m)"},
		{minimal + "\trecheck_interval 500ms\n}", "recheck_interval: too short (minimum 1s"},
		{minimal + "\tlauncher_url k1.example.com/apps\n}", `launcher_url: "k1.example.com/apps" is not an http(s) URL`},
		{minimal + "\texternal_url https://bms.example.com/sub\n}", "external_url:"},
		{minimal + "\tstore redis not-a-url\n}", "store"},
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in)); err != nil {
			t.Errorf("%q: parsing: %v (only syntax is checked while parsing)", tc.in, err)
			continue
		}
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var fromJSON Handler
		if err := json.Unmarshal(js, &fromJSON); err != nil {
			t.Fatal(err)
		}
		_, err = fromJSON.checkOptions(caddy.Context{})
		if err == nil {
			// The store module checks its own options when it is loaded.
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			_, err = fromJSON.loadStore(ctx)
			cancel()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "bms-proxy-secret") {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

// TestProvisionRefusesJSON: values that only the Caddyfile parser used to
// refuse are refused by Provision itself, so a JSON config cannot carry
// them either.
func TestProvisionRefusesJSON(t *testing.T) {
	base := `"issuer":"https://k1.example.com","client_id":"c","client_secret":"s",` +
		`"cookie_secrets":["` + strings.Repeat("x", 32) + `"],"users":"/u.csv"`
	for _, tc := range []struct{ field, want string }{
		{`"public":["/static/*","static"]`, `public: "static" must be a path pattern`},
		{`"clock_skew":"1h"`, "clock_skew: 1h0m0s is more than 10m"},
		{`"clock_skew":660000000000`, "clock_skew: 11m0s is more than 10m"},
		{`"login_timeout":"-1m"`, "login_timeout: -1m0s must not be negative"},
	} {
		var h Handler
		if err := json.Unmarshal([]byte("{"+base+","+tc.field+"}"), &h); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		_ = h.Cleanup()
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.field, err, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv("SHORT_SECRET", "too-short")
	base := func() Handler {
		return Handler{Issuer: "https://k1.example.com", ClientID: "c", ClientSecret: "s",
			CookieSecrets: []string{strings.Repeat("x", 32)}, Users: "/u.csv"}
	}
	for _, tc := range []struct {
		mod  func(*Handler)
		want string
	}{
		{func(h *Handler) { h.Issuer = "" }, "issuer: required"},
		{func(h *Handler) { h.Issuer = "ftp://k1" }, "issuer:"},
		{func(h *Handler) { h.ClientID = "{env.UNSET_K1SSO_VAR}" }, "client_id: required"},
		{func(h *Handler) { h.ClientSecret = "" }, "client_secret: required"},
		{func(h *Handler) { h.CookieSecrets = []string{"{env.SHORT_SECRET}"} }, "cookie_secret: secret #1 is 9 bytes"},
		{func(h *Handler) { h.ExternalURL = "https://bms.example.com/sub" }, "external_url:"},
		{func(h *Handler) { h.ExternalURL = "https://u@bms.example.com" }, "external_url:"},
		{func(h *Handler) { h.LoginPath = "//evil" }, "login_path:"},
		{func(h *Handler) { h.LandingPage = "https://evil.example" }, "landing_page:"},
		{func(h *Handler) { h.Users = "" }, "users: required"},
	} {
		h := base()
		tc.mod(&h)
		_, err := h.buildConfig()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "too-short") {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
	h := base()
	if _, err := h.buildConfig(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}
