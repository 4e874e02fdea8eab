package caddymodule

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("k1sso", parseCaddyfile)
	// Identity must be set before request_header, header_up and
	// reverse_proxy run, so no `order` line is needed.
	httpcaddyfile.RegisterDirectiveOrder("k1sso", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	k1sso {
//		issuer        <url>
//		client_id     <id>
//		client_secret <secret>
//		cookie_secret <secret> [<older secret>...]
//		users         <path to users.csv>
//		external_url  <scheme://host>
//		enforce
//		public        <path pattern>...
//		login_path    <path>
//		landing_page  <path>
//		scopes        <scope>...
//		require_mfa
//		session_lifetime <duration>
//		session_idle_timeout <duration>
//		expiry_notice <duration>
//		login_timeout <duration>
//		clock_skew    <duration>
//		header        <name> <value>
//		launcher_url  <url>
//		inject_login_link on|off
//		inject_launcher   on|off
//		logout_path   <path>
//		upstream_cookies <name>...
//		store         caddy | redis <url> | <store module> [<args>...]
//		integration_default on|off
//	}
//
// Unknown options and repeated single-value options are errors.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	file, line := d.File(), d.Line()
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "cookie_secret", "public", "header", "scopes":
			// may be given more than once
		default:
			if seen[opt] {
				return d.Errf("k1sso: option %s given twice", opt)
			}
		}
		seen[opt] = true
		args := d.RemainingArgs()
		one := func(dst *string) error {
			if len(args) != 1 {
				return d.Errf("k1sso: %s takes exactly one value", opt)
			}
			*dst = args[0]
			return nil
		}
		flag := func(dst *bool) error {
			if len(args) != 0 {
				return d.Errf("k1sso: %s takes no value", opt)
			}
			*dst = true
			return nil
		}
		dur := func(dst *caddy.Duration) error {
			var s string
			if err := one(&s); err != nil {
				return err
			}
			v, err := caddy.ParseDuration(s)
			if err != nil || v <= 0 {
				return d.Errf("k1sso: %s: %q is not a positive duration", opt, s)
			}
			*dst = caddy.Duration(time.Duration(v))
			return nil
		}
		var err error
		switch opt {
		case "issuer":
			err = one(&h.Issuer)
		case "client_id":
			err = one(&h.ClientID)
		case "client_secret":
			err = one(&h.ClientSecret)
		case "cookie_secret":
			if len(args) == 0 {
				return d.Errf("k1sso: cookie_secret needs at least one secret")
			}
			h.CookieSecrets = append(h.CookieSecrets, args...)
		case "users":
			err = one(&h.Users)
		case "external_url":
			err = one(&h.ExternalURL)
		case "enforce":
			err = flag(&h.Enforce)
		case "public":
			if len(args) == 0 {
				return d.Errf("k1sso: public needs at least one path pattern")
			}
			for _, p := range args {
				if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
					return d.Errf("k1sso: public: %q must be a path pattern starting with / or *", p)
				}
			}
			h.Public = append(h.Public, args...)
		case "login_path":
			err = one(&h.LoginPath)
		case "landing_page":
			err = one(&h.LandingPage)
		case "scopes":
			if len(args) == 0 {
				return d.Errf("k1sso: scopes needs at least one scope")
			}
			h.Scopes = append(h.Scopes, args...)
		case "require_mfa":
			err = flag(&h.RequireMFA)
		case "session_lifetime":
			err = dur(&h.SessionLifetime)
		case "login_timeout":
			err = dur(&h.LoginTimeout)
		case "header":
			if len(args) != 2 {
				return d.Errf("k1sso: header takes a name and a value")
			}
			if isIdentityHeader(args[0]) {
				return d.Errf("k1sso: header: %s is an identity header k1sso sets itself", args[0])
			}
			if h.Headers == nil {
				h.Headers = map[string]string{}
			}
			h.Headers[args[0]] = args[1]
		default:
			parse, ok := featureOptions[opt]
			if !ok {
				return d.Errf("k1sso: unknown option %q", opt)
			}
			err = parse(h, d, args)
		}
		if err != nil {
			return err
		}
		if d.NextBlock(1) {
			return d.Errf("k1sso: %s takes no block", opt)
		}
	}
	for _, req := range []string{"issuer", "client_id", "client_secret", "cookie_secret", "users"} {
		if !seen[req] {
			return fmt.Errorf("%s:%d - k1sso: option %s is required", file, line, req)
		}
	}
	return nil
}

// featureOptions parse the options of one feature each (launch, logout,
// store, ...), registered from that feature's file in init. A parser gets the
// option's arguments; the dispenser is for errors (d.Errf) only.
var featureOptions = map[string]func(h *Handler, d *caddyfile.Dispenser, args []string) error{}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)
