package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
)

// LaunchOptions configure K1-initiated launch, the app launcher and the
// injection of the login link and launcher icon into BMS pages.
type LaunchOptions struct {
	// K1's app launcher, where `/.k1sso/launcher` and the launcher icon
	// lead. An absolute http(s) URL. Default: `<issuer>/launcher`.
	LauncherURL string `json:"launcher_url,omitempty"`

	// Whether a "Log in with KaseyaOne" link is added at the bottom of
	// HTML pages at `login_path`. Caddyfile: `inject_login_link on|off`.
	// Default: true.
	InjectLoginLink *bool `json:"inject_login_link,omitempty"`

	// Whether a small launcher icon leading to K1's app launcher is added
	// to the HTML pages of K1 sessions, right after the element with
	// `id="user-name"`, or fixed at the top right where there is none.
	// Caddyfile: `inject_launcher on|off`. Default: true.
	InjectLauncher *bool `json:"inject_launcher,omitempty"`

	launcherURL  string
	injectLink   bool
	injectLaunch bool
}

func (h *Handler) provisionLaunch(ctx caddy.Context) error {
	h.launcherURL = h.cfg.issuerURL() + "/launcher"
	if h.LauncherURL != "" {
		raw := caddy.NewReplacer().ReplaceKnown(h.LauncherURL, "")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("launcher_url: %q is not an http(s) URL", h.LauncherURL)
		}
		h.launcherURL = u.String()
	}
	h.injectLink = h.InjectLoginLink == nil || *h.InjectLoginLink
	h.injectLaunch = h.InjectLauncher == nil || *h.InjectLauncher
	return nil
}

// maxLoginHint bounds the login_hint passed on to K1 (an email or a
// username; RFC 5321 caps an address at 254 bytes).
const maxLoginHint = 256

// validLoginHint reports whether a login_hint from a request may be passed
// on to K1: short, and without control characters. Every way in (the
// login link, K1's initiate) starts its login through startLogin, which
// drops any other hint.
func validLoginHint(hint string) bool {
	return len(hint) <= maxLoginHint && !strings.ContainsFunc(hint, func(c rune) bool { return c < 0x20 || c == 0x7f })
}

// serveInitiate is third-party initiated login (OIDC Core §4): K1's My
// Modules and app launcher send the browser here with iss, login_hint,
// target_link_uri and tenant, as query (GET) or form (POST).
func (h *Handler) serveInitiate(w http.ResponseWriter, r *http.Request, rq *request) error {
	var params url.Values
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		params = r.URL.Query()
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Bad sign-in request", Message: "The sign-in request from KaseyaOne could not be read."})
		}
		params = r.PostForm
	default:
		return h.methodNotAllowed(w, r, "GET, HEAD, POST")
	}
	if !h.cfg.isIssuer(params.Get("iss")) {
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Unknown sign-in issuer",
			Message: "This sign-in request did not come from the KaseyaOne this BMS trusts."})
	}
	tenant := params.Get("tenant")
	if tenant != "" && !validTenantID(tenant) {
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Unknown tenant", Message: "The tenant in this sign-in request is not valid."})
	}
	if tenant != "" && !h.shared.tenants.has(h.shared.dir, tenant) {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "Unknown tenant",
			Message: "This BMS has no tenant " + tenant + ". Ask your BMS administrator to check the KaseyaOne integration."})
	}
	hint := params.Get("login_hint")
	target := h.cfg.landingPage
	if raw := params.Get("target_link_uri"); raw != "" {
		if t, ok := h.insideExternal(rq.origin, raw); ok {
			target = t
		} else if ce := h.logger.Check(zapcore.DebugLevel, "initiate: target_link_uri outside external_url; using the landing page"); ce != nil {
			ce.Write(zap.String("target_link_uri", truncate(raw, 200)))
		}
	}
	// The browser already has a session of this user in this tenant: no
	// round trip to K1. A session of another K1 user (login_hint names
	// someone else) or another tenant starts a new login, and so does one
	// the tenant's company link no longer admits.
	e := rq.active()
	if e != nil && (tenant == "" || tenant == e.s.Tenant()) &&
		(hint == "" || !strings.Contains(hint, "@") || normalEmail(hint) == e.s.Email()) &&
		h.sessionAdmitted(r, rq) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, target, http.StatusFound)
		return nil
	}
	return h.startLogin(w, r, rq, loginRequest{rd: target, tenant: tenant, loginHint: hint, k1Initiated: true})
}

// serveLauncher sends the browser to K1's app launcher.
func (h *Handler) serveLauncher(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.methodNotAllowed(w, r, "GET, HEAD")
	}
	http.Redirect(w, r, h.launcherURL, http.StatusFound)
	return nil
}
