package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/sessioncookie"
)

// LogoutOptions configure global logout. Caddyfile:
//
//	logout_path      <path>
//	upstream_cookies <name>...
type LogoutOptions struct {
	// BMS's logout URL, a local path such as `/logout`. A request to it
	// that carries a K1 session is a global logout: it reaches BMS first
	// (BMS ends its own session), then the proxy ends its session, clears
	// its cookie and `upstream_cookies`, and sends the browser to K1's
	// end_session_endpoint. It is matched in any letter case, with or
	// without a trailing `/` and for every path below it, as BMS's servers
	// read those. A request another site started (Sec-Fetch-Site
	// `cross-site` or `same-site`, or an Origin or Referer of another
	// origin), or a same-origin one no user started (an image tag, a
	// prefetch), gets a sign-out confirmation instead. A request without a K1
	// session passes through untouched. Default: none (BMS's logout is not
	// intercepted).
	LogoutPath string `json:"logout_path,omitempty"`

	// Names of BMS's own session cookies (e.g. `BMSSESSION`). They are
	// expired (Path=/) on global logout and when a revoked session comes
	// back. Default: none.
	UpstreamCookies []string `json:"upstream_cookies,omitempty"`
}

// validCookieName reports whether s is a cookie name (an RFC 6265 token),
// as net/http checks it.
func validCookieName(s string) bool {
	return len(s) <= 128 && (&http.Cookie{Name: s}).Valid() == nil
}

func (h *Handler) provisionLogout(ctx caddy.Context) error {
	if h.LogoutPath != "" && !matchablePath(h.LogoutPath) {
		return fmt.Errorf("logout_path: %q must be a local path starting with /, in clean form (no query, no //, /./ or /../, no ; or %%)", h.LogoutPath)
	}
	for _, n := range h.UpstreamCookies {
		if !validCookieName(n) {
			return fmt.Errorf("upstream_cookies: %q is not a cookie name", n)
		}
	}
	return nil
}

// captureWriter takes BMS's answer to the logout request: its status and
// headers (for the Set-Cookie lines); the body is dropped, since the
// browser goes on to K1.
type captureWriter struct {
	hdr    http.Header
	status int
}

func (c *captureWriter) Header() http.Header { return c.hdr }

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *captureWriter) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

// interceptLogout turns a request to BMS's logout_path (see isLogoutPath)
// that carries a K1 session into a global logout: BMS first, as the user,
// then the proxy and K1 sessions end. A request another site started, or
// one no user started (userStarted), gets the sign-out confirmation of
// /.k1sso/logout instead, and the session stays. BMS gets the session's
// identity when it has one (rq.id).
func (h *Handler) interceptLogout(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rq *request) error {
	// The whole session (with its ID token, for K1), read while the
	// request still has its cookie; the cached one when it cannot be.
	sess := h.fullSession(r, rq)
	if sess == nil {
		sess = rq.entry.s.full()
	}
	if !h.sameOriginRequest(r, rq.origin) || !userStarted(r) {
		h.confirmLogout(w, r, sess, prefix+"logout?then=bms")
		return nil
	}
	cw := &captureWriter{hdr: http.Header{}}
	if err := h.forward(cw, r, next, rq, passLogout); err != nil {
		// BMS unreachable must not keep the user signed in at the proxy
		// and at K1.
		h.logger.Warn("BMS logout failed; ending the KaseyaOne session anyway", zap.Error(err))
	}
	for _, c := range cw.hdr.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
	h.endSession(w, r, rq, sess, "bms_logout")
	return nil
}

// sameOriginRequest reports whether a request was started by this site or
// by the user (a typed URL, a bookmark), not by another site. Browsers
// that send Fetch Metadata are believed: only `same-origin` and `none`
// count (`same-site` is a sibling subdomain, which may be anyone's). For
// older browsers, an Origin or Referer header naming another origin means
// another site; with neither (a typed URL, a client that is no browser)
// the request counts as the user's own.
func (h *Handler) sameOriginRequest(r *http.Request, site origin) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	origin := site.String()
	if o := r.Header.Get("Origin"); o != "" {
		return o == origin
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && u.Scheme+"://"+u.Host == origin
	}
	return true
}

// userStarted reports whether a request may be the user's own doing: a
// navigation, or a script of the page (fetch, XHR). Fetch Metadata tells
// apart what only a page's content asks for — an image, style or script
// tag (mode no-cors), a prefetch or prerender — which BMS content such as
// a ticket's HTML may hold on this very origin. Navigations of frames
// count as the user's: a BMS whose logout link opens in a frame must keep
// logging out (k1sso's confirmation page cannot be framed). Without Fetch
// Metadata (older browsers, other clients) a request counts as the user's.
func userStarted(r *http.Request) bool {
	if strings.Contains(r.Header.Get("Sec-Purpose"), "prefetch") || strings.EqualFold(r.Header.Get("Purpose"), "prefetch") {
		return false
	}
	return r.Header.Get("Sec-Fetch-Mode") != "no-cors"
}

// confirmLogout shows the sign-out confirmation: a POST form with a CSRF
// token, to action (/.k1sso/logout, with then=bms when it was asked for at
// logout_path).
func (h *Handler) confirmLogout(w http.ResponseWriter, r *http.Request, sess *session, action string) {
	h.page(w, r, http.StatusOK, pageData{Title: "Sign out?",
		Message: "You are signed in as " + sess.Email + ". Signing out ends your BMS session and your KaseyaOne session.",
		Confirm: &pageForm{Action: action, CSRF: h.csrfToken(sess.ID), Button: "Sign out"}})
}

// serveLogout is /.k1sso/logout: global logout without BMS. GET shows a
// confirmation form (or logs out at once with a valid csrf_token), POST
// with the form's CSRF token logs out (with then=bms: through logout_path,
// so BMS's logout runs too). Without a proxy session the browser
// goes straight to K1's end_session_endpoint, which ends its K1 session
// (the "Sign out of KaseyaOne" link of the no-account page).
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request, rq *request) error {
	// Any session its cookie still names can sign out, revoked or not.
	sess := h.fullSession(r, rq)
	if sess == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, h.endSessionURL(r, rq.origin, ""), http.StatusFound)
		return nil
	}
	var token string
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		token = r.URL.Query().Get("csrf_token")
		if token == "" {
			h.confirmLogout(w, r, sess, prefix+"logout")
			return nil
		}
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		if err := r.ParseForm(); err == nil {
			token = r.PostForm.Get("csrf_token")
		}
	default:
		return h.methodNotAllowed(w, r, "GET, HEAD, POST")
	}
	if !h.validCSRF(sess.ID, token) {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "Form expired", Message: "This sign-out form is no longer valid. Go back and try again.",
			Links: []pageLink{{Href: prefix + "logout", Text: "Sign out"}}})
	}
	if r.URL.Query().Get("then") == "bms" && h.LogoutPath != "" {
		// Confirmed after a cross-site request to logout_path: go there
		// again, now from this origin, so BMS ends its own session too and
		// interceptLogout ends the others.
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, h.LogoutPath, http.StatusSeeOther)
		return nil
	}
	h.endSession(w, r, rq, sess, "k1sso_logout")
	return nil
}

// endSession ends the proxy session everywhere, clears the proxy's and
// BMS's cookies and sends the browser to K1's end_session_endpoint.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, rq *request, sess *session, via string) {
	secure := rq.secure
	h.revokeSession(r.Context(), sess)
	h.shared.clearSession(w, secure)
	sessioncookie.Expire(w, sessioncookie.Name(adminCookie, secure), secure) // the admin page's sign-in ends too
	h.expireUpstreamCookies(w, r, secure, false)
	h.logger.Info("logout", zap.String("via", via), zap.String("k1_sub", sess.Subject), sidField(sess.SID))
	if via == "bms_logout" {
		h.metrics.logout(logoutBMS)
	} else {
		h.metrics.logout(logoutK1)
	}
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, h.endSessionURL(r, rq.origin, sess.IDToken), status)
}

// endSessionURL is K1's end_session_endpoint with id_token_hint,
// post_logout_redirect_uri (BMS's login page) and state; or the login page
// itself when K1 has no such endpoint or cannot be reached.
func (h *Handler) endSessionURL(r *http.Request, o origin, idToken string) string {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	p, err := h.shared.k1.Provider(ctx)
	if err != nil || p.EndSessionEndpoint() == "" {
		return h.cfg.loginPath
	}
	u, err := url.Parse(p.EndSessionEndpoint())
	if err != nil {
		return h.cfg.loginPath
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", h.cfg.clientID)
	q.Set("post_logout_redirect_uri", o.String()+h.cfg.loginPath)
	q.Set("state", randomID(16))
	u.RawQuery = q.Encode()
	return u.String()
}

// logoutError answers a refused logout token (Back-Channel Logout 1.0
// §2.8): 400 with an OAuth error JSON.
func logoutError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// serveBackchannelLogout is OpenID Connect Back-Channel Logout 1.0: K1
// POSTs a logout_token; after the checks of §2.6 every proxy session of its
// sid (or of its sub, when it has no sid) is revoked on every instance.
func (h *Handler) serveBackchannelLogout(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		logoutError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		logoutError(w, http.StatusBadRequest, "invalid_request", "the form could not be read")
		return nil
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		logoutError(w, http.StatusBadRequest, "invalid_request", "logout_token is missing")
		return nil
	}
	p, err := h.shared.k1.Provider(r.Context())
	if err != nil {
		w.Header().Set("Retry-After", "30")
		logoutError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "KaseyaOne's keys cannot be fetched")
		return nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), k1Timeout.get())
	defer cancel()
	now := time.Now()
	lt, err := p.VerifyLogoutToken(ctx, raw, h.clockSkew())
	if err != nil {
		h.logger.Info("back-channel logout refused", zap.Error(err))
		logoutError(w, http.StatusBadRequest, "invalid_request", "the logout token is not valid")
		return nil
	}
	if !validHeaderValue(lt.SessionID) || !validHeaderValue(lt.Subject) {
		logoutError(w, http.StatusBadRequest, "invalid_request", "the logout token's sub or sid is not valid")
		return nil
	}
	// Each jti once, on every instance. A store that cannot answer leaves
	// only this instance's memory: a replayed logout can only revoke again.
	ttl := min(max(time.Until(lt.Expiry)+h.clockSkew(), 5*time.Minute), 24*time.Hour)
	claimed, err := h.shared.used.claim(ctx, "logout-jti\x00"+lt.Issuer+"\x00"+lt.TokenID, ttl)
	if err != nil {
		h.logger.Warn("recording a logout token ID failed; checked in memory only", zap.Error(err))
		claimed = true
	}
	if !claimed {
		h.logger.Info("back-channel logout refused", zap.String("reason", "jti replayed"))
		logoutError(w, http.StatusBadRequest, "invalid_request", "the logout token was already used")
		return nil
	}
	// K1's clock, as the sessions' K1Issued.
	before := lt.IssuedAt.Unix()
	known, err := h.revokeK1(ctx, lt.SessionID, lt.Subject, before)
	if err != nil {
		// The token is K1's: revoke without knowing the sessions, for as
		// long as this instance's sessions can live.
		h.logger.Warn("reading the login records failed; revoking for the session lifetime", zap.Error(err))
		until := now.Add(h.cfg.lifetime + h.clockSkew() + time.Minute).Unix()
		h.revokeK1Until(ctx, lt.SessionID, lt.Subject, before, until)
		known = true
	}
	h.logger.Info("back-channel logout", zap.String("k1_sub", lt.Subject), sidField(lt.SessionID), zap.Bool("known", known))
	h.metrics.logout(logoutBackchannel)
	w.WriteHeader(http.StatusOK)
	return nil
}

// serveFrontchannelLogout is OpenID Connect Front-Channel Logout 1.0: K1's
// logged-out page loads it in an iframe with iss and sid. Every proxy
// session of that sid is revoked; this browser's cookies are cleared too
// when its session belongs to that sid.
func (h *Handler) serveFrontchannelLogout(w http.ResponseWriter, r *http.Request, rq *request) error {
	q := r.URL.Query()
	iss, sid := q.Get("iss"), q.Get("sid")
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors "+h.cfg.issuerOrigin())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return nil
	}
	if !h.cfg.isIssuer(iss) || sid == "" || len(sid) > 255 || !validHeaderValue(sid) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("<!doctype html><title>Bad request</title><p>iss and sid are required.</p>\n"))
		return nil
	}
	// Anyone can send this request: only a sid this deployment issued
	// sessions for is revoked (see loginRecordFolder). This browser's
	// session is its own whatever state it is in (idle, revoked, stale):
	// its cookie proves the sid all the same.
	e := rq.entry
	own := e != nil && e.s.SID() == sid
	known, err := h.revokeK1(r.Context(), sid, "", 0)
	if err != nil {
		h.logger.Warn("front-channel logout: reading the login records failed", zap.Error(err))
		if !own {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("<!doctype html><title>Try again</title><p>The sign-out could not be recorded. Please try again.</p>\n"))
			return nil
		}
		// This browser's session proves the sid: revoke it as long as
		// that session lives.
		h.revokeK1Until(r.Context(), sid, "", 0, e.s.Expires())
		known = true
	}
	if own {
		h.shared.clearSession(w, rq.secure)
		h.expireUpstreamCookies(w, r, rq.secure, true)
	}
	h.logger.Info("front-channel logout", sidField(sid), zap.Bool("known", known))
	h.metrics.logout(logoutFrontchannel)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("<!doctype html><title>Signed out</title><p>Signed out of BMS.</p>\n"))
	return nil
}
