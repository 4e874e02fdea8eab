package caddymodule

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/store"
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
//		recheck_interval <duration>|off
//		clock_skew    <duration>
//		header        <name> <value>
//		launcher_url  <url>
//		inject_login_link on|off
//		inject_launcher   on|off
//		integration_default on|off
//		logout_path   <path>
//		upstream_cookies <name>...
//		store         caddy | redis <url> | <store module> [<args>...]
//	}
//
// Only the syntax is checked here: unknown options, argument counts,
// repeated single-value options, durations and keywords. Whether a value
// makes sense (a required option, a minimum, a URL or path, a header k1sso
// sets itself) is checked by Provision, so a JSON config is held to the same
// rules; `caddy adapt` therefore accepts a block that `caddy run` refuses.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && !repeatableOption(opt) {
			return d.Errf("k1sso: option %s given twice", opt)
		}
		seen[opt] = true
		if err := h.unmarshalOption(d, opt, d.RemainingArgs()); err != nil {
			return err
		}
		if d.NextBlock(1) {
			return d.Errf("k1sso: %s takes no block", opt)
		}
	}
	return nil
}

// repeatableOption reports whether opt may be given more than once; its
// values are then appended.
func repeatableOption(opt string) bool {
	switch opt {
	case "cookie_secret", "public", "header", "scopes":
		return true
	}
	return false
}

// unmarshalOption sets the field of one option from its arguments; d is
// for errors only, so that they carry the file and line.
func (h *Handler) unmarshalOption(d *caddyfile.Dispenser, opt string, args []string) error {
	p := optionArgs{d: d, opt: opt, args: args}
	switch opt {
	case "issuer":
		return p.one(&h.Issuer)
	case "client_id":
		return p.one(&h.ClientID)
	case "client_secret":
		return p.one(&h.ClientSecret)
	case "cookie_secret":
		return p.some(&h.CookieSecrets, "secret")
	case "users":
		return p.one(&h.Users)
	case "external_url":
		return p.one(&h.ExternalURL)
	case "enforce":
		return p.flag(&h.Enforce)
	case "public":
		return p.some(&h.Public, "path pattern")
	case "login_path":
		return p.one(&h.LoginPath)
	case "landing_page":
		return p.one(&h.LandingPage)
	case "scopes":
		return p.some(&h.Scopes, "scope")
	case "require_mfa":
		return p.flag(&h.RequireMFA)
	case "session_lifetime":
		return p.duration(&h.SessionLifetime)
	case "session_idle_timeout":
		return p.duration(&h.SessionIdleTimeout)
	case "expiry_notice":
		return p.duration(&h.ExpiryNotice)
	case "login_timeout":
		return p.duration(&h.LoginTimeout)
	case "recheck_interval":
		if len(args) == 1 && args[0] == "off" {
			h.RecheckInterval = -1 // JSON spells off as a negative interval
			return nil
		}
		if len(args) != 1 {
			return d.Errf("k1sso: recheck_interval takes a duration or off")
		}
		v, err := caddy.ParseDuration(args[0])
		if err != nil || v <= 0 {
			return d.Errf("k1sso: recheck_interval: %q is not a positive duration or off", args[0])
		}
		h.RecheckInterval = caddy.Duration(v)
		return nil
	case "clock_skew":
		if len(args) != 1 {
			return d.Errf("k1sso: clock_skew takes exactly one duration")
		}
		v, err := caddy.ParseDuration(args[0])
		if err != nil || v < 0 {
			return d.Errf("k1sso: clock_skew: %q is not a duration of 0s or more", args[0])
		}
		if v == 0 {
			v = -1 // explicit zero: no leeway (0 in JSON means the default)
		}
		h.ClockSkew = caddy.Duration(v)
		return nil
	case "header":
		if len(args) != 2 {
			return d.Errf("k1sso: header takes a name and a value")
		}
		if h.Headers == nil {
			h.Headers = map[string]string{}
		}
		h.Headers[args[0]] = args[1]
		return nil
	case "launcher_url":
		return p.one(&h.LauncherURL)
	case "inject_login_link":
		return p.onOff(&h.InjectLoginLink)
	case "inject_launcher":
		return p.onOff(&h.InjectLauncher)
	case "integration_default":
		var on *bool
		if err := p.onOff(&on); err != nil {
			return err
		}
		h.IntegrationDefault = args[0]
		return nil
	case "logout_path":
		return p.one(&h.LogoutPath)
	case "upstream_cookies":
		return p.some(&h.UpstreamCookies, "cookie name")
	case "store":
		return parseStoreOption(h, d, args)
	}
	return d.Errf("k1sso: unknown option %q", opt)
}

// optionArgs are the arguments of one option, with the parsers of the
// argument shapes that several options share.
type optionArgs struct {
	d    *caddyfile.Dispenser
	opt  string
	args []string
}

func (p optionArgs) one(dst *string) error {
	if len(p.args) != 1 {
		return p.d.Errf("k1sso: %s takes exactly one value", p.opt)
	}
	*dst = p.args[0]
	return nil
}

// some appends one or more values; what names one value in the error.
func (p optionArgs) some(dst *[]string, what string) error {
	if len(p.args) == 0 {
		return p.d.Errf("k1sso: %s needs at least one %s", p.opt, what)
	}
	*dst = append(*dst, p.args...)
	return nil
}

func (p optionArgs) flag(dst *bool) error {
	if len(p.args) != 0 {
		return p.d.Errf("k1sso: %s takes no value", p.opt)
	}
	*dst = true
	return nil
}

// onOff sets a switch whose JSON default (nil) is kept apart from off.
func (p optionArgs) onOff(dst **bool) error {
	if len(p.args) != 1 || (p.args[0] != "on" && p.args[0] != "off") {
		return p.d.Errf("k1sso: %s takes on or off", p.opt)
	}
	v := p.args[0] == "on"
	*dst = &v
	return nil
}

// duration reads a positive duration. Zero and negative durations are not
// Caddyfile syntax: in JSON, 0 means the option is unset and negative values
// are the spellings of off, so a Caddyfile `0s` or `-1m` would silently mean
// something else than it says. Minimums are Provision's.
func (p optionArgs) duration(dst *caddy.Duration) error {
	if len(p.args) != 1 {
		return p.d.Errf("k1sso: %s takes exactly one duration", p.opt)
	}
	v, err := caddy.ParseDuration(p.args[0])
	if err != nil || v <= 0 {
		return p.d.Errf("k1sso: %s: %q is not a positive duration", p.opt, p.args[0])
	}
	*dst = caddy.Duration(time.Duration(v))
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// storeSyntax is the store option's Caddyfile syntax, for errors.
const storeSyntax = "k1sso: store takes `caddy` or `redis <url>`, or the name of a store module and its arguments"

// parseStoreOption reads `store <name> [args...]`: the store module
// http.handlers.k1sso.stores.<name> reads its own tokens (from its name
// on, with any block), as Caddy's pluggable parts do.
func parseStoreOption(h *Handler, d *caddyfile.Dispenser, args []string) error {
	if len(args) == 0 {
		return d.Errf("%s", storeSyntax)
	}
	id := store.ModuleNamespace + "." + args[0]
	if _, err := caddy.GetModule(id); err != nil {
		return d.Errf("%s: no store module %s is registered", storeSyntax, id)
	}
	// Back from the last argument to the name, where the module starts.
	for range len(args) - 1 {
		d.Prev()
	}
	unm, err := caddyfile.UnmarshalModule(d, id)
	if err != nil {
		return err
	}
	if _, ok := unm.(store.Backend); !ok {
		return d.Errf("k1sso: store: module %s is not a k1sso store (store.Backend)", id)
	}
	h.StoreRaw = caddyconfig.JSONModuleObject(unm, "backend", args[0], nil)
	return nil
}
