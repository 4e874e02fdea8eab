package caddymodule

import (
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// prefix is the reserved path prefix of k1sso's own endpoints.
const prefix = "/.k1sso/"

// ServeHTTP strips forged identity headers, serves /.k1sso/ endpoints, and
// sets the identity of a valid session for the rest of the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Every decision below is on the path as it is forwarded.
	if !canonicalPath(r.URL) {
		return h.badPath(w, r)
	}
	stripIdentityHeaders(r.Header, h.Headers)
	if err := h.shared.ready(); err != nil { // app.go
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	if strings.HasPrefix(r.URL.Path, prefix) {
		return h.serveEndpoint(w, r)
	}
	if !h.stripIdentityTrailers(r) {
		h.page(w, r, http.StatusBadRequest, pageData{Title: "Bad request", Message: "The request declares an identity header as a trailer."})
		return nil
	}
	now := clockNow()
	secure := h.secure(r)
	e := h.lookup(r, secure, now)
	revoked := e != nil && h.revoked(e, now)
	var logout *session // the whole session (with its ID token) for logout
	if e != nil && !revoked && h.isLogoutPath(r.URL.Path) {
		if logout = h.shared.fullSession(r, secure); logout == nil {
			logout = e.s.full()
		}
	}
	sentCookie := e == nil && h.Enforce && cookieValue(r, cookieName(sessionCookie, secure)) != ""
	var renew *renewal // idle.go: the session's cookie to re-issue
	if e != nil && !revoked {
		renew = h.touch(r, e, now)
	}
	// From here on the request is what the upstream may see: k1sso's
	// cookies go before any placeholder (header option, later handlers)
	// can be expanded.
	dropOwnCookies(r)
	if revoked {
		return h.serveRevoked(w, r, next, e)
	}
	if logout != nil {
		return h.interceptLogout(w, r, next, e, logout)
	}
	if e != nil && e.s.Tenant() != "" {
		if id := h.identity(r, e, now); id != nil {
			if done, err := h.recheckAtK1(w, r, e, now); done {
				return err
			}
			h.setIdentity(r, e, id)
			h.reissue(w, r, e, renew)
			if isStreamRequest(r) {
				return h.serveStream(w, r, next, e)
			}
			return h.nextInjected(w, r, next, e)
		}
	}
	if !h.Enforce || h.isPublic(r) {
		return h.nextInjected(w, r, next, nil)
	}
	return h.requireLogin(w, r, e, sentCookie)
}

// serveEndpoint routes /.k1sso/ requests.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request) error {
	switch strings.TrimPrefix(r.URL.Path, prefix) {
	case "login":
		return h.serveLogin(w, r)
	case "callback":
		return h.serveCallback(w, r)
	case "tenant":
		return h.serveTenant(w, r)
	case "whoami":
		return h.serveWhoami(w, r)
	case "jwks.json":
		return h.serveJWKS(w, r)
	case "initiate":
		return h.serveInitiate(w, r)
	case "launcher":
		return h.serveLauncher(w, r)
	case "logout":
		return h.serveLogout(w, r)
	case "backchannel-logout":
		return h.serveBackchannelLogout(w, r)
	case "frontchannel-logout":
		return h.serveFrontchannelLogout(w, r)
	case "replay":
		return h.serveReplay(w, r)
	case "admin":
		return h.serveAdmin(w, r)
	}
	h.page(w, r, http.StatusNotFound, pageData{Title: "Not found", Message: "There is no k1sso page at this address."})
	return nil
}

// activeSession returns the request's session when it currently carries an
// identity: not revoked, a tenant chosen, and its account still in the
// directory. Shortcuts that skip K1 use it, so a session that lost its
// identity cannot bounce between login and target forever.
func (h *Handler) activeSession(r *http.Request) *sessionEntry {
	now := clockNow()
	e := h.lookup(r, h.secure(r), now)
	if e == nil || e.s.Tenant() == "" || h.revoked(e, now) || h.identity(r, e, now) == nil {
		return nil
	}
	return e
}

// isPublic reports whether a path never needs a session: login_path and
// the public patterns, compared case-sensitively with the canonical path
// that is forwarded (matching less is the safe side here).
func (h *Handler) isPublic(r *http.Request) bool {
	return r.URL.Path == h.cfg.loginPath || h.public.match(r)
}

// requireLogin answers a request that needs a session but has none:
// browsers navigating are sent to K1 (or to the tenant picker), everything
// else gets 401. sentCookie tells the log whether a session cookie came.
func (h *Handler) requireLogin(w http.ResponseWriter, r *http.Request, e *sessionEntry, sentCookie bool) error {
	if ce := h.logger.Check(zapcore.DebugLevel, "request needs a KaseyaOne session"); ce != nil {
		reason := "no session cookie"
		if e != nil {
			reason = "session has no tenant yet"
		} else if sentCookie {
			reason = "session cookie invalid, expired or for another tenant"
		}
		ce.Write(zap.String("path", r.URL.Path), zap.String("reason", reason))
	}
	if done, err := h.keepForm(w, r, e); done {
		return err
	}
	if !isNavigation(r) {
		unauthorized(w, "unauthorized", prefix+"login")
		return nil
	}
	rd := r.URL.RequestURI()
	if !isLocalPath(rd) {
		rd = h.cfg.landingPage
	}
	target := prefix + "login?rd=" + url.QueryEscape(rd)
	if e != nil && e.s.Tenant() == "" {
		target = prefix + "tenant?rd=" + url.QueryEscape(rd)
	}
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// wantsJSON reports whether a client expects an API answer, not a page.
func wantsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return r.Header.Get("X-Requested-With") != "" ||
		(strings.Contains(a, "application/json") && !strings.Contains(a, "text/html"))
}

// base returns the external scheme and host: external_url, or the request's.
func (h *Handler) base(r *http.Request) *url.URL {
	if h.cfg.external != nil {
		return h.cfg.external
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: r.Host}
}

// secure reports whether cookies must be Secure (and __Host- prefixed).
func (h *Handler) secure(r *http.Request) bool {
	if h.cfg.external != nil {
		return h.cfg.external.Scheme == "https"
	}
	return r.TLS != nil
}
