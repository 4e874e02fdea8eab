package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// checkTimeout bounds a whole `caddy k1sso check`; each call to K1 or the
// store is bounded by k1Timeout / storeTimeout as well.
const checkTimeout = time.Minute

// checkDummyCode is the authorization code of the credentials check: no OP
// issued it, so a K1 that accepts the client answers invalid_grant.
const checkDummyCode = "k1sso-check-not-a-real-code"

// foundHandler is one k1sso handler in a config, with the site addresses
// that lead to it.
type foundHandler struct {
	raw   json.RawMessage
	bases []string // scheme://host[:port] of the sites; "" host: any
}

// checker writes the lines of one check run.
type checker struct {
	w      io.Writer
	failed bool
}

func (c *checker) line(mark, check, format string, args ...any) {
	if mark == "FAIL" {
		c.failed = true
	}
	fmt.Fprintf(c.w, "%-4s  %-9s  %s\n", mark, check, fmt.Sprintf(format, args...))
}

// runCheck checks every k1sso handler of a Caddy JSON config; failed is
// true when any check failed. err is for a config that cannot be read.
func runCheck(ctx context.Context, w io.Writer, cfgJSON []byte) (failed bool, err error) {
	var cfg caddy.Config
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return false, fmt.Errorf("decoding config: %v", err)
	}
	found, err := findHandlers(cfg.AppsRaw["http"])
	if err != nil {
		return false, err
	}
	c := &checker{w: w}
	if len(found) == 0 {
		c.line("FAIL", "config", "no k1sso handler in this config")
		return true, nil
	}
	cctx, storageErr := checkContext(cfg.StorageRaw)
	for i, f := range found {
		var h Handler
		if err := decodeHandler(f.raw, &h); err != nil {
			fmt.Fprintf(w, "k1sso handler %d\n", i+1)
			c.line("FAIL", "config", "decoding the handler: %v", err)
			continue
		}
		fmt.Fprintf(w, "k1sso handler %d: %s\n", i+1, strings.Join(f.bases, ", "))
		c.checkHandler(ctx, &h, f.bases, cctx, storageErr)
	}
	return c.failed, nil
}

func (c *checker) checkHandler(ctx context.Context, h *Handler, bases []string, cctx caddy.Context, storageErr error) {
	expand := func(s string) string { return caddy.NewReplacer().ReplaceKnown(s, "") }
	cfg, err := h.checkOptions(caddy.Context{Context: ctx})
	if err != nil {
		c.line("FAIL", "config", "%v", err)
	} else {
		c.line("ok", "config", "options valid")
	}
	issuer := expand(h.Issuer)
	disc := c.checkDiscovery(ctx, issuer)

	if cfg != nil && cfg.external != nil {
		bases = []string{cfg.external.String()}
	}
	redirect := ""
	if len(bases) > 0 {
		redirect = bases[0] + prefix + "callback"
	}
	switch {
	case cfg == nil:
		c.line("skip", "client", "needs valid options")
	case disc == nil:
		c.line("skip", "client", "needs discovery")
	default:
		c.checkClient(ctx, cfg, disc, redirect)
	}

	loginPath := h.LoginPath
	if loginPath == "" {
		loginPath = "/login"
	}
	for _, b := range bases {
		c.line("info", "register", "redirect URI %s", b+prefix+"callback")
		c.line("info", "register", "post-logout redirect URI %s", b+loginPath)
		c.line("info", "register", "initiate-login URI %s", b+prefix+"initiate")
		c.line("info", "register", "back-channel logout URI %s", b+prefix+"backchannel-logout")
	}

	if h.Users == "" {
		c.line("FAIL", "users", "users: required")
	} else if d, err := loadUsers(h.Users, 1); err != nil {
		c.line("FAIL", "users", "%v", err)
	} else {
		n := 0
		for _, a := range d.byEmail {
			n += len(a)
		}
		c.line("ok", "users", "%s: %d emails, %d BMS accounts", h.Users, len(d.byEmail), n)
	}

	sc, err := h.loadStore(cctx)
	switch {
	case err != nil:
		c.line("FAIL", "store", "%v", err)
	case sc.kind == "caddy" && storageErr != nil:
		c.line("FAIL", "store", "Caddy's storage: %v", storageErr)
	default:
		c.checkStore(ctx, sc, cctx)
	}
}

// discoveryDoc is what the check reads of K1's discovery document.
type discoveryDoc struct {
	Issuer      string   `json:"issuer"`
	TokenURL    string   `json:"token_endpoint"`
	JWKS        string   `json:"jwks_uri"`
	Revocation  string   `json:"revocation_endpoint"`
	AuthMethods []string `json:"revocation_endpoint_auth_methods_supported"`
}

// checkDiscovery fetches discovery and compares its issuer; it returns the
// document, nil when discovery failed.
func (c *checker) checkDiscovery(ctx context.Context, issuer string) *discoveryDoc {
	// The same URL go-oidc fetches.
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, k1Timeout.get())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		c.line("FAIL", "discovery", "issuer %q: %v", issuer, err)
		return nil
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.line("FAIL", "discovery", "%s is unreachable: %v", u, errors.Unwrap(err))
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.line("FAIL", "discovery", "%s answered %s", u, resp.Status)
		return nil
	}
	var meta discoveryDoc
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&meta); err != nil {
		c.line("FAIL", "discovery", "%s is not a discovery document: %v", u, err)
		return nil
	}
	switch {
	case meta.Issuer != issuer:
		c.line("FAIL", "discovery", "K1 says its issuer is %q, the config says %q: they must be equal letter for letter (mind a trailing /)", meta.Issuer, issuer)
	case meta.TokenURL == "" || meta.JWKS == "":
		c.line("FAIL", "discovery", "%s lacks token_endpoint or jwks_uri", u)
	default:
		c.line("ok", "discovery", "%s answers; its issuer equals the configured one", u)
	}
	if meta.TokenURL == "" {
		return nil
	}
	return &meta
}

// checkClient sends a token request with a made-up code: an OP that
// checks the client first answers invalid_client for wrong credentials and
// invalid_grant for right ones. Some OPs (zitadel's, so k1dev) look at the
// code first and answer invalid_grant either way, so where discovery lists
// a revocation endpoint, revoking a made-up token proves the credentials
// too (RFC 7009: 200 for an unknown token, 401 for a wrong client).
func (c *checker) checkClient(ctx context.Context, cfg *config, d *discoveryDoc, redirect string) {
	oc := &oauth2.Config{ClientID: cfg.clientID, ClientSecret: cfg.clientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: d.TokenURL}, RedirectURL: redirect}
	ctx, cancel := context.WithTimeout(ctx, k1Timeout.get())
	defer cancel()
	_, err := oc.Exchange(ctx, checkDummyCode, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	var re *oauth2.RetrieveError
	switch {
	case err == nil:
		c.line("FAIL", "client", "K1 accepted a made-up authorization code: is %s a real OpenID provider?", d.TokenURL)
		return
	case errors.As(err, &re) && re.ErrorCode == "invalid_grant":
	case errors.As(err, &re):
		c.line("FAIL", "client", "K1 refused client_id %s: %s", cfg.clientID, k1Refusal(re))
		return
	default:
		c.line("FAIL", "client", "token endpoint %s is unreachable: %v", d.TokenURL, err)
		return
	}
	if d.Revocation == "" {
		c.line("ok", "client", "K1 accepts client_id %s and its secret (a made-up code got invalid_grant)", cfg.clientID)
		return
	}
	form := url.Values{"token": {checkDummyCode}, "token_type_hint": {"refresh_token"}}
	basic := len(d.AuthMethods) == 0 || slices.Contains(d.AuthMethods, "client_secret_basic")
	if !basic {
		form.Set("client_id", cfg.clientID)
		form.Set("client_secret", cfg.clientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Revocation, strings.NewReader(form.Encode()))
	if err != nil {
		c.line("FAIL", "client", "revocation endpoint %q: %v", d.Revocation, err)
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(cfg.clientID), url.QueryEscape(cfg.clientSecret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.line("FAIL", "client", "revocation endpoint %s is unreachable: %v", d.Revocation, errors.Unwrap(err))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		c.line("ok", "client", "K1 accepts client_id %s and its secret (token endpoint: invalid_grant for a made-up code; revocation endpoint: 200)", cfg.clientID)
		return
	}
	var oe struct {
		Code string `json:"error"`
		Desc string `json:"error_description"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&oe)
	rerr := &oauth2.RetrieveError{Response: resp, ErrorCode: oe.Code, ErrorDescription: oe.Desc}
	c.line("FAIL", "client", "K1 refused client_id %s at the revocation endpoint: %s", cfg.clientID, k1Refusal(rerr))
}

// checkStore writes and reads a probe key.
func (c *checker) checkStore(ctx context.Context, sc storeConfig, cctx caddy.Context) {
	// A namespace of its own: the probe touches no deployment's keys.
	st, err := openStore(sc, "check", cctx, zap.NewNop())
	if err != nil {
		c.line("FAIL", "store", "%v", err)
		return
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, storeTimeout+time.Second)
	defer cancel()
	name := "store " + sc.kind
	if s, ok := sc.backend.(fmt.Stringer); ok {
		name = s.String() // without secrets
	}
	key := "check/" + randomID(9)
	if err := st.Put(ctx, key, []byte("k1sso check"), time.Minute); err != nil {
		c.line("FAIL", "store", "%s: writing: %v", name, err)
		return
	}
	if _, err := st.Get(ctx, key); err != nil {
		c.line("FAIL", "store", "%s: reading: %v", name, err)
		return
	}
	if d, ok := st.(interface {
		Delete(ctx context.Context, key string) error
	}); ok {
		_ = d.Delete(ctx, key) // Redis drops it itself after a minute
	}
	c.line("ok", "store", "%s answers", name)
}

// checkContext provisions the config's storage module (Caddy's default
// storage without one), without anything else of the config, for the
// store modules. A storage that fails still leaves a context to load the
// store module in; storageErr says why.
func checkContext(raw json.RawMessage) (ctx caddy.Context, storageErr error) {
	return caddy.ProvisionContext(&caddy.Config{StorageRaw: raw})
}

// findHandlers walks the http app's routes (subroutes included) for k1sso
// handlers and the site addresses in front of them.
func findHandlers(raw json.RawMessage) ([]foundHandler, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var app struct {
		HTTPPort  int `json:"http_port"`
		HTTPSPort int `json:"https_port"`
		Servers   map[string]struct {
			Listen []string        `json:"listen"`
			Routes json.RawMessage `json:"routes"`
			Auto   *struct {
				Disable bool     `json:"disable"`
				Skip    []string `json:"skip"`
			} `json:"automatic_https"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(raw, &app); err != nil {
		return nil, fmt.Errorf("decoding the http app: %v", err)
	}
	if app.HTTPPort == 0 {
		app.HTTPPort = caddyhttp.DefaultHTTPPort
	}
	if app.HTTPSPort == 0 {
		app.HTTPSPort = caddyhttp.DefaultHTTPSPort
	}
	names := make([]string, 0, len(app.Servers))
	for n := range app.Servers {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []foundHandler
	for _, n := range names {
		srv := app.Servers[n]
		port := ""
		if len(srv.Listen) > 0 {
			if a, err := caddy.ParseNetworkAddress(srv.Listen[0]); err == nil {
				port = fmt.Sprint(a.StartPort)
			}
		}
		base := func(host string) string {
			scheme := "https"
			if port == fmt.Sprint(app.HTTPPort) || (srv.Auto != nil && (srv.Auto.Disable || slices.Contains(srv.Auto.Skip, host))) {
				scheme = "http"
			}
			if host == "" {
				host = "<host>"
			}
			if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") || port == "" {
				return scheme + "://" + host
			}
			return scheme + "://" + net.JoinHostPort(host, port)
		}
		err := walkRoutes(srv.Routes, nil, func(h json.RawMessage, hosts []string) {
			f := foundHandler{raw: h}
			if len(hosts) == 0 {
				hosts = []string{""}
			}
			for _, host := range hosts {
				f.bases = append(f.bases, base(host))
			}
			out = append(out, f)
		})
		if err != nil {
			return nil, fmt.Errorf("server %s: %v", n, err)
		}
	}
	return out, nil
}

// walkRoutes calls found for every k1sso handler in routes, with the host
// matchers of the routes that lead to it.
func walkRoutes(raw json.RawMessage, hosts []string, found func(json.RawMessage, []string)) error {
	if len(raw) == 0 {
		return nil
	}
	var routes []struct {
		Match []struct {
			Host []string `json:"host"`
		} `json:"match"`
		Handle []json.RawMessage `json:"handle"`
	}
	if err := json.Unmarshal(raw, &routes); err != nil {
		return err
	}
	for _, r := range routes {
		hs := hosts
		var own []string
		for _, m := range r.Match {
			own = append(own, m.Host...)
		}
		if len(own) > 0 {
			hs = own
		}
		for _, h := range r.Handle {
			var head struct {
				Handler string          `json:"handler"`
				Routes  json.RawMessage `json:"routes"`
			}
			if err := json.Unmarshal(h, &head); err != nil {
				return err
			}
			switch head.Handler {
			case "k1sso":
				found(h, hs)
			case "subroute":
				if err := walkRoutes(head.Routes, hs, found); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// decodeHandler decodes a handler's JSON as Caddy does: strictly, without
// the "handler" key that names the module.
func decodeHandler(raw json.RawMessage, h *Handler) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return err
	}
	delete(m, "handler")
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return caddy.StrictUnmarshalJSON(b, h)
}
