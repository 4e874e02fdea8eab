package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

const minimal = `k1sso {
	issuer http://127.0.0.1:9000
	client_id bms-proxy
	client_secret {env.K1_CLIENT_SECRET}
	cookie_secret {env.NEW_SECRET} {env.OLD_SECRET}
	users /etc/k1sso/users.csv
`

func TestCaddyfileParses(t *testing.T) {
	var h Handler
	in := minimal + `	external_url https://bms.example.com
	enforce
	public /static/* /favicon.ico
	login_path /signin
	landing_page /dashboard
	scopes openid email profile
	require_mfa
	session_lifetime 4h
	header X-Remote-User {http.auth.user.id}
}`
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(h)
	want := `{"issuer":"http://127.0.0.1:9000","client_id":"bms-proxy","client_secret":"{env.K1_CLIENT_SECRET}",` +
		`"cookie_secrets":["{env.NEW_SECRET}","{env.OLD_SECRET}"],"users":"/etc/k1sso/users.csv",` +
		`"external_url":"https://bms.example.com","enforce":true,"public":["/static/*","/favicon.ico"],"login_path":"/signin",` +
		`"landing_page":"/dashboard","scopes":["openid","email","profile"],"require_mfa":true,"session_lifetime":14400000000000,` +
		`"headers":{"X-Remote-User":"{http.auth.user.id}"}}`
	if !strings.HasPrefix(string(got), strings.TrimSuffix(want, "}")) {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
	if strings.Contains(string(got), "bms-proxy-secret") {
		t.Error("a secret was expanded into the JSON config")
	}
}

func TestCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"k1sso {\n}", "option issuer is required"},
		{"k1sso {\n\tissuer http://x\n}", "option client_id is required"},
		{"k1sso {\n\tissuer http://x\n\tclient_id a\n}", "option client_secret is required"},
		{"k1sso {\n\tissuer http://x\n\tclient_id a\n\tclient_secret b\n}", "option cookie_secret is required"},
		{"k1sso {\n\tissuer http://x\n\tclient_id a\n\tclient_secret b\n\tcookie_secret c\n}", "option users is required"},
		{minimal + "\tbogus 1\n}", `unknown option "bogus"`},
		{minimal + "\tissuer http://y\n}", "option issuer given twice"},
		{minimal + "\tenforce yes\n}", "enforce takes no value"},
		{minimal + "\tlogin_path\n}", "login_path takes exactly one value"},
		{minimal + "\tsession_lifetime soon\n}", `session_lifetime: "soon" is not a positive duration`},
		{minimal + "\theader X-BMS-User evil\n}", "X-BMS-User is an identity header"},
		{minimal + "\theader x_k1_email evil\n}", "is an identity header"},
		{minimal + "\theader X-Only\n}", "header takes a name and a value"},
		{minimal + "\tpublic static\n}", "must be a path pattern"},
		{"k1sso extra {\n}", "wrong argument count"},
		{minimal + "\tupstream_cookies BMS;SESSION\n}", `upstream_cookies: "BMS;SESSION" is not a cookie name`},
		{minimal + "\tupstream_cookies\n}", "upstream_cookies needs at least one cookie name"},
		{minimal + "\tlogout_path //evil\n}", "logout_path: \"//evil\" must be a local path"},
		{minimal + "\tstore redis\n}", "store takes `caddy` or `redis <url>`"},
		{minimal + "\tstore memcached x\n}", "store takes `caddy` or `redis <url>`"},
		{minimal + "\tinject_launcher maybe\n}", "inject_launcher"},
		{minimal + "\tintegration_default perhaps\n}", "integration_default"},
		{minimal + "\tclock_skew 1h\n}", "clock_skew"},
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
