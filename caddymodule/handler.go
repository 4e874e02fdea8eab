package caddymodule

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/sessioncookie"
)

// prefix is the reserved path prefix of k1sso's own endpoints.
const prefix = "/.k1sso/"

// ServeHTTP strips forged identity headers, serves /.k1sso/ endpoints, and
// sets the identity of a valid session for the rest of the route. What the
// request is (its origin, its session and what that session means now) is
// decided once, by classify; the branches below only read it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Every decision below is on the path as it is forwarded.
	if !canonicalPath(r.URL) {
		return h.badPath(w, r)
	}
	stripIdentityHeaders(r.Header, h.Headers)
	if err := h.shared.ready(); err != nil { // app.go
		return h.notStarted(w, r, err)
	}
	rq := h.classify(r) // request.go
	if strings.HasPrefix(r.URL.Path, prefix) {
		return h.serveEndpoint(w, r, &rq)
	}
	if !h.stripIdentityTrailers(r) {
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Bad request", Message: "The request declares an identity header as a trailer."})
	}
	var renew *renewal // idle.go: the session's cookie to re-issue
	if rq.signedIn() {
		renew = h.touch(r, &rq)
	}
	switch {
	case rq.state == sessionRevoked || rq.state == sessionStale:
		return h.serveRevoked(w, r, next, &rq)
	case rq.logoutPath && rq.signedIn():
		return h.interceptLogout(w, r, next, &rq)
	case rq.state == sessionActive:
		if done, err := h.recheckAtK1(w, r, &rq); done {
			return err
		}
		h.reissue(w, r, &rq, renew)
		return h.forward(w, r, next, &rq, passIdentity)
	case !h.Enforce || h.isPublic(r):
		if done, err := h.keepEndedForm(w, r, &rq); done { // replay.go
			return err
		}
		return h.forward(w, r, next, &rq, passAnonymous)
	}
	return h.requireLogin(w, r, &rq)
}

// notStarted refuses a request that came before the pooled state could
// start (the store unreadable). It is a refusal like any other, so an
// error route that takes it gets neither k1sso's nor BMS's cookies; the
// store's error, which names its paths or addresses, goes to the log, not
// to {err.message}.
func (h *Handler) notStarted(w http.ResponseWriter, r *http.Request, err error) error {
	h.logger.Error("k1sso could not start", zap.Error(err))
	w.Header().Set("Retry-After", "5")
	return h.refuse(w, r, http.StatusServiceUnavailable, pageData{Title: "Sign-in temporarily unavailable",
		Message: "The sign-in service is starting or cannot reach its store. Please try again in a moment.",
		Links:   []pageLink{h.retryLink(r)}})
}

// How forward hands a request on.
type passOn uint8

const (
	// passAnonymous: without identity; a page at login_path may get the
	// login link.
	passAnonymous passOn = iota
	// passCleared: without identity and without BMS's session cookies,
	// which the response has just expired (a revoked session at the login
	// page).
	passCleared
	// passIdentity: with the active session's identity; its pages get the
	// launcher and the expiry notice, its streams are watched.
	passIdentity
	// passLogout: BMS's logout as the user (with identity when the session
	// has one); nothing is injected, w captures the answer.
	passLogout
)

// forward runs the rest of the route: every path to next goes through it.
// It is the one place k1sso's cookies leave the request, and it drops them
// before the identity is set, whose header option expands placeholders,
// so neither the upstream nor {http.request.cookie.*} /
// {http.request.header.Cookie} ever see them. Everything before it may
// still read them.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rq *request, how passOn) error {
	var upstream func(name string) bool
	if how == passCleared {
		upstream = func(name string) bool { return slices.Contains(h.UpstreamCookies, name) }
	}
	dropCookies(r, upstream)
	switch how {
	case passLogout:
		if rq.id != nil {
			h.setIdentity(r, rq.entry, rq.id)
		}
		return next.ServeHTTP(w, r)
	case passIdentity:
		h.setIdentity(r, rq.entry, rq.id)
		if isStreamRequest(r) {
			return h.serveStream(w, r, next, rq.entry)
		}
		return h.nextInjected(w, r, next, rq.entry)
	}
	return h.nextInjected(w, r, next, nil)
}

// serveEndpoint routes /.k1sso/ requests.
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, rq *request) error {
	switch strings.TrimPrefix(r.URL.Path, prefix) {
	case "login":
		return h.serveLogin(w, r, rq)
	case "callback":
		return h.serveCallback(w, r, rq)
	case "tenant":
		return h.serveTenant(w, r, rq)
	case "whoami":
		return h.serveWhoami(w, r, rq)
	case "jwks.json":
		return h.serveJWKS(w, r)
	case "initiate":
		return h.serveInitiate(w, r, rq)
	case "launcher":
		return h.serveLauncher(w, r)
	case "logout":
		return h.serveLogout(w, r, rq)
	case "backchannel-logout":
		return h.serveBackchannelLogout(w, r)
	case "frontchannel-logout":
		return h.serveFrontchannelLogout(w, r, rq)
	case "replay":
		return h.serveReplay(w, r, rq)
	case "admin":
		return h.serveAdmin(w, r, rq)
	}
	return h.refuse(w, r, http.StatusNotFound, pageData{Title: "Not found", Message: "There is no k1sso page at this address."})
}

// isPublic reports whether a path never needs a session: login_path and
// the public patterns, compared case-sensitively with the canonical path
// that is forwarded (matching less is the safe side here).
func (h *Handler) isPublic(r *http.Request) bool {
	return r.URL.Path == h.cfg.loginPath || h.public.match(r)
}

// requireLogin answers a request that needs a session but has none:
// browsers navigating are sent to K1 (or to the tenant picker), everything
// else gets 401.
func (h *Handler) requireLogin(w http.ResponseWriter, r *http.Request, rq *request) error {
	if ce := h.logger.Check(zapcore.DebugLevel, "request needs a KaseyaOne session"); ce != nil {
		reason := "no session cookie"
		switch {
		case rq.state == sessionNoTenant:
			reason = "session has no tenant yet"
		case rq.state == sessionNoAccount:
			reason = "session has no BMS account in its tenant"
		case sessioncookie.Value(r, sessioncookie.Name(sessionCookie, rq.secure)) != "":
			reason = "session cookie invalid, expired or for another tenant"
		}
		ce.Write(zap.String("path", r.URL.Path), zap.String("reason", reason))
	}
	if done, err := h.keepForm(w, r, rq); done {
		return err
	}
	if !rq.navigation(r) {
		return h.challenge(w, r, "unauthorized", prefix+"login")
	}
	rd := r.URL.RequestURI()
	if !isLocalPath(rd) {
		rd = h.cfg.landingPage
	}
	target := prefix + "login?rd=" + url.QueryEscape(rd)
	if rq.state == sessionNoTenant {
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
