// Package caddymodule is k1sso: a Caddy HTTP handler that puts KaseyaOne (K1)
// single sign-on in front of an unmodified Kaseya BMS.
//
// A request passes through the handler in this order: identity headers the
// client sent are deleted, the session cookie is looked up (in memory when the
// cookie was seen before), and the identity of the session is set as request
// headers and placeholders for the rest of the route. Requests under
// /.k1sso/ are served by the handler itself (login, callback, whoami, ...).
package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the k1sso HTTP handler (module ID `http.handlers.k1sso`). It
// authenticates BMS users at KaseyaOne over OpenID Connect, keeps their
// session in an encrypted cookie and tells the upstream who they are through
// identity headers that clients can never forge.
type Handler struct {
	// The K1 issuer URL. Discovery is fetched lazily from
	// `<issuer>/.well-known/openid-configuration`, so Caddy starts while K1
	// is down. Required.
	Issuer string `json:"issuer,omitempty"`

	// The OAuth client ID of this proxy at K1. Placeholders such as
	// `{env.K1_CLIENT_ID}` are expanded at provision time. Required.
	ClientID string `json:"client_id,omitempty"`

	// The OAuth client secret of this proxy at K1. Placeholders such as
	// `{env.K1_CLIENT_SECRET}` or `{file./run/secret}` are expanded at
	// provision time, so the adapted JSON keeps the placeholder, not the
	// secret. Required.
	ClientSecret string `json:"client_secret,omitempty"`

	// Secrets that encrypt and sign the cookies, each at least 32 bytes after
	// placeholder expansion. The first one encodes new cookies; all of them
	// decode, so a secret can be rotated by putting a new one first. Required.
	CookieSecrets []string `json:"cookie_secrets,omitempty"`

	// Path of the users CSV file (`email,bms_user,tenant,tenant_name,roles`)
	// that matches K1 accounts to BMS accounts by email. It is reloaded when
	// it changes; a broken new file keeps the old one. Required.
	Users string `json:"users,omitempty"`

	// The external URL of BMS behind this proxy (scheme and host, e.g.
	// `https://bms.example.com`). It builds the redirect URI and bounds
	// every redirect. Default: scheme and host of the request.
	ExternalURL string `json:"external_url,omitempty"`

	// When true, every request outside `public` and `login_path` needs a K1
	// session: browsers are sent to K1, other requests get 401. Default:
	// false (optional SSO: requests without a session pass through without
	// identity, so BMS's own login keeps working).
	Enforce bool `json:"enforce,omitempty"`

	// Path patterns that never need a session, in Caddy's path matcher
	// syntax (exact, `/prefix*`, `*suffix`, `*middle*`, globs; `%` compares
	// the escaped path), e.g. `/static/*`. Unlike Caddy's matcher they are
	// compared case-sensitively with the path exactly as it is forwarded
	// (a path not in canonical form, such as `/a/../b`, is refused first).
	// `login_path` is always public. Default: none.
	Public []string `json:"public,omitempty"`

	// BMS's own login page, matched exactly (case-sensitively). Always
	// public. Default: `/login`.
	LoginPath string `json:"login_path,omitempty"`

	// Where users land after login when no better target is known. Must be
	// a local path. Default: `/`.
	LandingPage string `json:"landing_page,omitempty"`

	// The OAuth scopes requested at K1. `openid` is always included.
	// Default: `openid email profile`.
	Scopes []string `json:"scopes,omitempty"`

	// When true, ID tokens whose `amr` claim shows no second factor (`otp`,
	// `mfa`, `hwk`, `swk`, `sms`, `totp`) are rejected. Default: false.
	RequireMFA bool `json:"require_mfa,omitempty"`

	// How long a session lasts after login. Default: 8h.
	SessionLifetime caddy.Duration `json:"session_lifetime,omitempty"`

	// Extra request headers set from the session, name to value; values may
	// use placeholders such as `{http.auth.user.id}`. The client's own copies
	// of these headers are always deleted first. Default: none.
	Headers map[string]string `json:"headers,omitempty"`

	// How long an authentication at K1 may take from /.k1sso/login to the
	// callback. Default: 10m.
	LoginTimeout caddy.Duration `json:"login_timeout,omitempty"`

	// Allowed clock difference to K1 when checking an ID token: how far in
	// the future its `iat` may lie and how long after its `exp` it is still
	// accepted. At most 10m; a negative value means no leeway (Caddyfile:
	// `0s`). Default: 2m.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`

	// The KaseyaOne integration switch of tenants that no admin has switched
	// yet: `on` (SP-initiated K1 sign-in works until an admin turns it off)
	// or `off` (every tenant needs an admin to turn it on at /.k1sso/admin
	// first). Default: `on`.
	IntegrationDefault string `json:"integration_default,omitempty"`

	// Where the state shared by proxy instances lives (revocations, used
	// login states and logout-token IDs, the assertion key): a store
	// module of the namespace http.handlers.k1sso.stores, named by
	// `backend`. `caddy` is Caddy's configured storage (the file system by
	// default; instances sharing the folder see each other's revocations
	// within about one second); `redis` takes a `url` (revocations reach
	// every instance at once). Any other registered store module works
	// the same way (docs/store.md). Default: `caddy`.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=http.handlers.k1sso.stores inline_key=backend"`

	// Options of K1-initiated launch, the launcher and page injection.
	LaunchOptions

	// Options of global logout.
	LogoutOptions

	// Options of the recheck of live sessions with K1.
	RecheckOptions

	// Options of the idle timeout and the expiry notice.
	LifecycleOptions

	cfg         *config
	externalStr string
	shared      *shared
	key         string
	public      pathMatcher // see path.go
	logger      *zap.Logger
	metrics     *metrics // see metrics.go
}

// config is the provisioned, secret-expanded form of the handler's options.
type config struct {
	issuer       string
	clientID     string
	clientSecret string
	cookieKeys   [][]byte
	external     *url.URL // nil: taken from each request
	loginPath    string
	landingPage  string
	scopes       []string
	lifetime     time.Duration
	loginTimeout time.Duration
	store        storeConfig // loaded in Provision (store.go)
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.k1sso",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision expands secrets, applies defaults and attaches the state that
// must survive config reloads (session cache, K1 client, directory).
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.metrics = provisionMetrics(ctx, h.logger)
	cfg, err := h.checkOptions(ctx)
	if err != nil {
		return err
	}
	if cfg.store, err = h.loadStore(ctx); err != nil { // store.go
		return err
	}
	h.key = poolKey(cfg, h.Users)
	val, _, err := sharedPool.LoadOrNew(h.key, func() (caddy.Destructor, error) {
		return newShared(ctx, cfg, h.Users, h.logger)
	})
	if err != nil {
		h.key = ""
		return err
	}
	h.shared = val.(*shared)
	h.shared.lifetime.Store(int64(cfg.lifetime / time.Second))
	return h.registerApp(ctx) // app.go
}

// checkOptions checks every option and sets what follows from them alone,
// before any state is attached: a bad config fails before it opens a
// store, and `k1sso check` reports the same errors as Provision. Errors
// name the option.
func (h *Handler) checkOptions(ctx caddy.Context) (*config, error) {
	cfg, err := h.buildConfig()
	if err != nil {
		return nil, err
	}
	h.cfg = cfg
	if cfg.external != nil {
		h.externalStr = cfg.external.String()
	}
	if h.public, err = newPathMatcher(h.Public); err != nil {
		return nil, fmt.Errorf("public: %w", err)
	}
	for _, provision := range []func() error{
		h.provisionIntegration,
		func() error { return h.provisionLaunch(ctx) },
		h.provisionRecheck,
		h.provisionLifecycle,
		func() error { return h.provisionLogout(ctx) },
	} {
		if err := provision(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// buildConfig expands placeholders in secrets and checks every option,
// naming the option in each error.
func (h *Handler) buildConfig() (*config, error) {
	repl := caddy.NewReplacer()
	expand := func(s string) string { return repl.ReplaceKnown(s, "") }
	c := &config{
		// Exactly as configured: discovery's issuer must equal it
		// character for character (OIDC Discovery §4.3), and some OPs
		// publish theirs with a trailing "/".
		issuer:       expand(h.Issuer),
		clientID:     expand(h.ClientID),
		clientSecret: expand(h.ClientSecret),
		loginPath:    h.LoginPath,
		landingPage:  h.LandingPage,
		lifetime:     time.Duration(h.SessionLifetime),
		loginTimeout: time.Duration(h.LoginTimeout),
	}
	if c.issuer == "" {
		return nil, errors.New("issuer: required")
	}
	iu, err := url.Parse(c.issuer)
	if err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" {
		return nil, fmt.Errorf("issuer: %q is not an http(s) URL", c.issuer)
	}
	if c.clientID == "" {
		return nil, errors.New("client_id: required" + emptyHint(h.ClientID)) // diagnose.go
	}
	if c.clientSecret == "" {
		return nil, errors.New("client_secret: required" + emptyHint(h.ClientSecret))
	}
	if len(h.CookieSecrets) == 0 {
		return nil, errors.New("cookie_secret: required")
	}
	for i, s := range h.CookieSecrets {
		v := expand(s)
		if len(v) < 32 {
			return nil, fmt.Errorf("cookie_secret: secret #%d is %d bytes after expansion; need at least 32%s", i+1, len(v), emptyHint(s))
		}
		c.cookieKeys = append(c.cookieKeys, []byte(v))
	}
	if h.Users == "" {
		return nil, errors.New("users: required")
	}
	if h.ExternalURL != "" {
		u, err := url.Parse(expand(h.ExternalURL))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("external_url: %q must be scheme and host only, like https://bms.example.com", h.ExternalURL)
		}
		u.Path = ""
		c.external = u
	}
	if c.loginPath == "" {
		c.loginPath = "/login"
	}
	if !matchablePath(c.loginPath) {
		return nil, fmt.Errorf("login_path: %q must be a local path starting with /, in clean form (no query, no //, /./ or /../, no ; or %%)", c.loginPath)
	}
	if c.landingPage == "" {
		c.landingPage = "/"
	}
	if !isLocalPath(c.landingPage) {
		return nil, fmt.Errorf("landing_page: %q must be a local path starting with /", c.landingPage)
	}
	c.scopes = []string{"openid"}
	if len(h.Scopes) == 0 {
		c.scopes = append(c.scopes, "email", "profile")
	}
	for _, s := range h.Scopes {
		if s != "openid" {
			c.scopes = append(c.scopes, s)
		}
	}
	if c.lifetime == 0 {
		c.lifetime = 8 * time.Hour
	}
	if c.lifetime < time.Minute {
		return nil, fmt.Errorf("session_lifetime: %s is too short (minimum 1m)", c.lifetime)
	}
	if c.loginTimeout == 0 {
		c.loginTimeout = 10 * time.Minute
	}
	if c.loginTimeout < 0 {
		return nil, fmt.Errorf("login_timeout: %s must not be negative", c.loginTimeout)
	}
	if s := time.Duration(h.ClockSkew); s > maxClockSkew {
		return nil, fmt.Errorf("clock_skew: %s is more than %s", s, strings.TrimSuffix(maxClockSkew.String(), "0s"))
	}
	for name := range h.Headers {
		if isIdentityHeader(name) {
			return nil, fmt.Errorf("header: %s is an identity header k1sso sets itself", name)
		}
	}
	return c, nil
}

// issuerURL is the issuer without a trailing "/", for building URLs below
// it: `<issuer>/launcher` is the same place for either spelling.
func (c *config) issuerURL() string { return strings.TrimSuffix(c.issuer, "/") }

// isIssuer reports whether iss, a parameter that a browser carries
// (K1-initiated login, front-channel logout), names the configured issuer.
// It is a plain URL, not a signed claim, so a trailing "/" is not held
// against it.
func (c *config) isIssuer(iss string) bool {
	return iss != "" && strings.TrimSuffix(iss, "/") == c.issuerURL()
}

// issuerOrigin is the scheme and host of the issuer (for frame-ancestors).
func (c *config) issuerOrigin() string {
	u, err := url.Parse(c.issuer)
	if err != nil {
		return "'none'"
	}
	return u.Scheme + "://" + u.Host
}

// poolKey identifies the shared state of a configuration without holding any
// secret: the secrets enter only through a hash.
func poolKey(c *config, users string) string {
	h := sha256.New()
	for _, p := range []string{c.issuer, c.clientID, c.clientSecret, users, c.store.id} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	for _, k := range c.cookieKeys {
		h.Write(k)
		h.Write([]byte{0})
	}
	return "k1sso:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// Validate checks what Provision cannot have fixed.
func (h *Handler) Validate() error {
	if h.shared == nil {
		return errors.New("k1sso: not provisioned")
	}
	return nil
}

// Cleanup releases this config's hold on the shared state. Caddy calls it
// even when Provision failed, so only a key that was stored is deleted.
func (h *Handler) Cleanup() error {
	if h.key == "" {
		return nil
	}
	_, err := sharedPool.Delete(h.key)
	return err
}

// Interface guards
var (
	_ caddy.Module                = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
