package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestPathOptionsMustBeMatchable: login_path and logout_path are compared
// with the request's path, which is never anything but a clean path
// without a query (others are refused before). A value with a query, a
// fragment or a form no request path can have would silently never match
// (no login link, no public login page, BMS's logout without the K1
// logout), so it is a configuration error naming the option.
func TestPathOptionsMustBeMatchable(t *testing.T) {
	bad := []string{"/logout?next=/", "/logout#x", "/a/../logout", "/a//logout", "/logout;jsessionid=1", "/log%6Fut"}
	for _, p := range bad {
		h := Handler{Issuer: "https://k1.example.com", ClientID: "c", ClientSecret: "s",
			CookieSecrets: []string{strings.Repeat("x", 32)}, Users: "/u.csv", LoginPath: p}
		if _, err := h.buildConfig(); err == nil || !strings.Contains(err.Error(), "login_path:") {
			t.Errorf("login_path %q: error %v, want one naming login_path", p, err)
		}
		var lh Handler
		err := lh.UnmarshalCaddyfile(caddyfile.NewTestDispenser(minimal + "\tlogout_path " + p + "\n}"))
		if err == nil { // good syntax: Provision refuses it
			err = lh.provisionLogout(caddy.Context{})
		}
		if err == nil || !strings.Contains(err.Error(), "logout_path:") {
			t.Errorf("logout_path %q in a Caddyfile: error %v, want one naming logout_path", p, err)
		}
		lh = Handler{LogoutOptions: LogoutOptions{LogoutPath: p}}
		if err := lh.provisionLogout(caddy.Context{}); err == nil || !strings.Contains(err.Error(), "logout_path:") {
			t.Errorf("logout_path %q in JSON: error %v, want one naming logout_path", p, err)
		}
	}
	for _, p := range []string{"/login", "/Account/Logout.aspx", "/logout/"} {
		h := Handler{Issuer: "https://k1.example.com", ClientID: "c", ClientSecret: "s",
			CookieSecrets: []string{strings.Repeat("x", 32)}, Users: "/u.csv", LoginPath: p}
		if _, err := h.buildConfig(); err != nil {
			t.Errorf("login_path %q: %v", p, err)
		}
		lh := Handler{LogoutOptions: LogoutOptions{LogoutPath: p}}
		if err := lh.provisionLogout(caddy.Context{}); err != nil {
			t.Errorf("logout_path %q: %v", p, err)
		}
	}
}
