package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/securecookie"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/sessioncookie"
)

// loginState is what a pending login keeps in its signed, encrypted,
// short-lived cookie: it binds the callback to this browser.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`           // PKCE code verifier
	RD       string `json:"r"`           // local target after login
	Tenant   string `json:"t,omitempty"` // tenant the login asked for
	Redirect string `json:"u"`           // redirect_uri sent to K1
	Issued   int64  `json:"i"`
	// K1Initiated marks a launch from K1 (/.k1sso/initiate), which works
	// even where the integration switch disables SP-initiated login.
	K1Initiated bool `json:"k,omitempty"`
	// Purpose is "" for a plain login; other features (the admin switch)
	// finish their own action after the login.
	Purpose string `json:"p,omitempty"`
	Payload string `json:"d,omitempty"`
	// Recheck marks a prompt=none login that rechecks a live session
	// (recheck.go): its failure ends that session.
	Recheck bool `json:"rc,omitempty"`
}

// loginRequest is what starts a login.
type loginRequest struct {
	rd          string
	tenant      string
	loginHint   string
	prompt      string
	fresh       bool // a new authentication at K1: prompt=login, max_age=0
	k1Initiated bool
	purpose     string
	payload     string
	recheck     bool
}

// serveLogin starts an SP-initiated login: GET /.k1sso/login?rd=&tenant=.
func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request, rq *request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.methodNotAllowed(w, r, "GET, HEAD")
	}
	q := r.URL.Query()
	lr := loginRequest{rd: h.redirectTarget(q.Get("rd")), tenant: q.Get("tenant"), loginHint: q.Get("login_hint")}
	if lr.tenant != "" && !validTenantID(lr.tenant) {
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Unknown tenant", Message: "The tenant in this sign-in link is not valid."})
	}
	// Before any lookup: what a request names must not fill the caches.
	if lr.tenant != "" && !h.shared.tenants.has(h.shared.dir, lr.tenant) {
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: "Unknown tenant",
			Message: "This BMS has no tenant " + lr.tenant + ". Check the sign-in link."})
	}
	if f := h.spLoginAllowed(r.Context(), lr.tenant); f != nil {
		return h.refuse(w, r, f.status, pageData{Title: f.title, Message: f.message, Links: f.links})
	}
	// Already signed in (for that tenant): nothing to do at K1, unless the
	// session is to be renewed (renew=1, the expiry notice's link, notice.go):
	// then a new one for the same tenant.
	if e := rq.active(); e != nil && (lr.tenant == "" || lr.tenant == e.s.Tenant()) && h.sessionAdmitted(r, rq) {
		if q.Get("renew") == "" {
			http.Redirect(w, r, lr.rd, http.StatusFound)
			return nil
		}
		lr.tenant = e.s.Tenant()
	}
	return h.startLogin(w, r, rq, lr)
}

// startLogin sends the browser to K1's authorization endpoint with a fresh
// state, nonce and PKCE verifier kept in a login cookie.
func (h *Handler) startLogin(w http.ResponseWriter, r *http.Request, rq *request, lr loginRequest) error {
	p, err := h.shared.k1.Provider(r.Context())
	if err != nil {
		return h.k1Down(w, r, err)
	}
	secure := rq.secure
	h.boundLoginCookies(w, r, secure)
	st := loginState{
		State:    randomID(32),
		Nonce:    randomID(32),
		Verifier: oauth2.GenerateVerifier(),
		RD:       lr.rd,
		Tenant:   lr.tenant,
		Redirect: rq.origin.String() + prefix + "callback",
		Issued:   time.Now().Unix(),

		K1Initiated: lr.k1Initiated,
		Purpose:     lr.purpose,
		Payload:     lr.payload,
		Recheck:     lr.recheck,
	}
	v, err := securecookie.EncodeMulti(loginCookiePre, &st, h.shared.codecs.login...)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessioncookie.New(sessioncookie.Name(loginCookiePre+st.State[:12], secure), v, secure, h.cfg.loginTimeout))
	opts := []oauth2.AuthCodeOption{oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)}
	if lr.loginHint != "" && validLoginHint(lr.loginHint) {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", lr.loginHint))
	}
	switch {
	case lr.fresh:
		// max_age=0 makes K1 authenticate again and send auth_time
		// (OIDC Core §3.1.2.1), which completePurpose requires.
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	case lr.prompt != "":
		opts = append(opts, oauth2.SetAuthURLParam("prompt", lr.prompt))
	}
	oc := h.oauthConfig(p, st.Redirect)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, oc.AuthCodeURL(st.State, opts...), http.StatusFound)
	return nil
}

// boundLoginCookies keeps the number of pending-login cookies small: a
// browser that started many logins without finishing them loses the old ones.
func (h *Handler) boundLoginCookies(w http.ResponseWriter, r *http.Request, secure bool) {
	pre := sessioncookie.Name(loginCookiePre, secure)
	var names []string
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, pre) {
			names = append(names, c.Name)
		}
	}
	if len(names) < maxLoginCookies {
		return
	}
	for _, n := range names {
		sessioncookie.Expire(w, n, secure)
	}
}

func (h *Handler) oauthConfig(p *k1Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     h.cfg.clientID,
		ClientSecret: h.cfg.clientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  redirect,
		Scopes:       h.scopesFor(p),
	}
}

// k1Down answers a login whose discovery failed (err from k1Client.get):
// K1 cannot be reached, or its discovery names another issuer.
func (h *Handler) k1Down(w http.ResponseWriter, r *http.Request, err error) error {
	if f := discoveryFailure(err); f.reason != "k1_unreachable" {
		return h.refuse(w, r, f.status, pageData{Title: f.title, Message: f.message, Detail: f.detail})
	}
	w.Header().Set("Retry-After", "30")
	return h.refuse(w, r, http.StatusServiceUnavailable, pageData{
		Title:   "KaseyaOne is unreachable",
		Message: "Sign-in through KaseyaOne is not possible right now because KaseyaOne cannot be reached. Please try again in a minute.",
		Links:   []pageLink{h.retryLink(r)},
	})
}

// sidField logs a K1 session ID as k1_sid_hash, the first 16 hex digits
// of its SHA-256: the sid itself is all a front-channel logout needs, so
// whoever reads the logs could end that K1 session's proxy sessions. The
// hash still ties the lines of one K1 session together.
func sidField(sid string) zap.Field {
	if sid == "" {
		return zap.Skip()
	}
	sum := sha256.Sum256([]byte(sid))
	return zap.String("k1_sid_hash", hex.EncodeToString(sum[:8]))
}

// discoveryFailure is the refusal of a login whose discovery failed (err
// from k1Client.get). A misconfiguration (such as a configured issuer that
// K1 does not publish) is the administrator's to fix, and the page says
// what it is.
func discoveryFailure(err error) *loginFailure {
	reason, detail, ok := misconfigured(err) // k1client.go
	if !ok {
		return fail(http.StatusServiceUnavailable, "k1_unreachable", "KaseyaOne is unreachable", "KaseyaOne cannot be reached. Please try again in a minute.")
	}
	f := fail(http.StatusServiceUnavailable, reason, "KaseyaOne sign-in is misconfigured",
		"Sign-in through KaseyaOne is not possible until an administrator corrects the KaseyaOne settings of this proxy.")
	f.detail = detail
	f.kind = problemConfig // diagnose.go
	return f
}

// loginFailure is a refused login: what the user sees and what is logged.
type loginFailure struct {
	status  int
	reason  string // stable, for logs and metrics
	title   string
	message string
	detail  string // shown below the message
	links   []pageLink
	kind    string      // what kind of problem, for the page; "": from reason (diagnose.go)
	log     []zap.Field // what K1 said or the network error; never a secret
}

func (f *loginFailure) Error() string { return f.reason }

func fail(status int, reason, title, message string) *loginFailure {
	return &loginFailure{status: status, reason: reason, title: title, message: message}
}

// serveCallback finishes a login: GET /.k1sso/callback?code=&state=.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request, rq *request) error {
	secure := rq.secure
	sess, st, err := h.finishLogin(w, r, secure)
	if err != nil {
		var f *loginFailure
		if errors.As(err, &f) && h.recheckLoginFailed(w, r, rq, f.reason) {
			return nil
		}
		if !errors.As(err, &f) {
			f = fail(http.StatusBadRequest, "internal", "Sign-in failed", "The sign-in could not be completed. Please try again.")
			h.logger.Error("login failed", zap.Error(err))
		}
		fields := append([]zap.Field{zap.String("outcome", "failure"), zap.String("reason", f.reason)}, f.log...)
		if sess != nil {
			fields = append(fields, zap.String("k1_sub", sess.Subject), zap.String("email", sess.Email))
		}
		h.logger.Info("login", fields...)
		h.metrics.login("failure", f.reason)
		links := f.links
		if links == nil {
			links = []pageLink{signInAgain(st)} // diagnose.go
		}
		return h.refuse(w, r, f.status, pageData{Title: f.title, Message: f.message, Detail: problemDetail(f), Links: links})
	}
	// A sign-in for a purpose (the admin page) runs its own checks and
	// never writes a session.
	if st.Purpose != "" {
		return h.completePurpose(w, r, secure, st, sess)
	}
	if err := h.shared.writeSession(w, r, sess, secure); err != nil {
		h.logger.Error("writing the session cookie", zap.Error(err))
		h.metrics.login("failure", "session_cookie")
		return h.refuse(w, r, http.StatusBadRequest, pageData{Title: "Sign-in failed", Message: "The session could not be stored in your browser."})
	}
	h.keepK1Tokens(r.Context(), sess)
	h.logger.Info("login", zap.String("outcome", "success"), zap.String("k1_sub", sess.Subject),
		zap.String("email", sess.Email), zap.String("tenant", sess.Tenant), sidField(sess.SID))
	// The reason of a success tells SP-initiated logins from K1 launches.
	if st.K1Initiated {
		h.metrics.login("success", "k1_initiated")
	} else {
		h.metrics.login("success", "sp_initiated")
	}
	target := st.RD
	if sess.Tenant == "" {
		target = prefix + "tenant?rd=" + url.QueryEscape(st.RD)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// finishLogin runs every check of the callback and returns the new session.
// For a purpose sign-in it returns the verified sign-in only: the purpose's
// checks are completePurpose's, and no session is written for it.
func (h *Handler) finishLogin(w http.ResponseWriter, r *http.Request, secure bool) (*session, *loginState, error) {
	q := r.URL.Query()
	state := q.Get("state")
	st, stErr := h.loginStateFor(r, state, secure)
	if len(state) >= 12 {
		sessioncookie.Expire(w, sessioncookie.Name(loginCookiePre+state[:12], secure), secure)
	}
	if e := q.Get("error"); e != "" {
		return nil, nil, k1Error(e, q.Get("error_description"), stErr == nil)
	}
	if stErr != nil {
		return nil, nil, stErr
	}
	code := q.Get("code")
	if code == "" {
		return nil, nil, fail(http.StatusBadRequest, "missing_code", "Sign-in failed", "KaseyaOne's answer had no authorization code.")
	}
	claimed, err := h.shared.used.claim(r.Context(), st.State, stateMaxAge)
	if err != nil {
		return nil, nil, fail(http.StatusServiceUnavailable, "store_unavailable", "Sign-in failed", "The sign-in could not be recorded. Please try again.")
	}
	if !claimed {
		return nil, nil, fail(http.StatusBadRequest, "state_reused", "Sign-in link already used", "This sign-in answer was already used. Start a new sign-in.")
	}
	p, err := h.shared.k1.Provider(r.Context())
	if err != nil {
		f := discoveryFailure(err)
		if f.reason == "k1_unreachable" {
			f.log = lastErrorFields(h.shared.k1) // diagnose.go
		}
		return nil, st, f
	}
	if f := checkResponseIss(p, q); f != nil {
		return nil, st, f
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), oauth2.HTTPClient, h.shared.k1.HTTPClient()), k1Timeout.get())
	defer cancel()
	tok, err := h.oauthConfig(p, st.Redirect).Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return nil, st, tokenFailure(err) // diagnose.go
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, nil, fail(http.StatusBadRequest, "no_id_token", "Sign-in failed", "KaseyaOne's answer had no ID token.")
	}
	c, err := h.verifyIDToken(ctx, p, raw, st.Nonce, tok)
	if err != nil {
		return nil, nil, err
	}
	now := h.shared.now()
	sess := &session{
		ID:       randomID(18),
		Subject:  c.Subject,
		Email:    c.Email,
		Name:     c.Name,
		SID:      c.SID,
		Company:  c.Company,
		IDToken:  raw,
		AuthTime: c.AuthTime,
		K1Issued: c.IssuedAt,
		Issued:   now.Unix(),
		Expires:  now.Add(h.cfg.lifetime).Unix(),
		k1Tokens: tok,
	}
	if st.Purpose != "" {
		// Checked by completePurpose, which needs to know whether K1 sent
		// auth_time at all.
		return sess, st, nil
	}
	if sess.AuthTime == 0 {
		sess.AuthTime = now.Unix()
	}
	acc, f := h.chooseAccount(sess.Email, st.Tenant)
	if f != nil {
		return sess, st, f
	}
	if acc != nil {
		sess.Tenant = acc.Tenant
	}
	if f := h.integrationCheck(r.Context(), st, sess, acc); f != nil {
		return sess, st, f
	}
	// Before the cookie: a session a logout cannot find must not exist.
	if err := h.recordLogin(r.Context(), sess); err != nil {
		h.logger.Warn("storing the login record failed", zap.Error(err))
		return sess, st, fail(http.StatusServiceUnavailable, "store_unavailable", "Sign-in failed", "The sign-in could not be recorded. Please try again.")
	}
	return sess, st, nil
}

// checkResponseIss is RFC 9207's mix-up defence, before the code goes
// anywhere: an iss in the authorization response must be exactly the
// issuer, and when K1 advertises that it always sends one, it must be
// there.
func checkResponseIss(p *k1Provider, q url.Values) *loginFailure {
	iss, present := q["iss"]
	switch {
	case !present && !p.IssParameterSupported():
		return nil
	case !present:
		return fail(http.StatusBadRequest, "iss_missing", "Sign-in failed",
			"KaseyaOne's answer did not say which KaseyaOne sent it, so you were not signed in. Start a new sign-in.")
	case len(iss) != 1 || iss[0] != p.Issuer():
		return fail(http.StatusBadRequest, "iss_mismatch", "Sign-in failed",
			"The sign-in answer came from another identity provider than the KaseyaOne this BMS trusts, so you were not signed in. Start a new sign-in.")
	}
	return nil
}

// loginStateFor finds and checks the login cookie of a callback's state.
func (h *Handler) loginStateFor(r *http.Request, state string, secure bool) (*loginState, error) {
	bad := fail(http.StatusBadRequest, "state_mismatch", "Sign-in expired or started elsewhere",
		"This sign-in did not start in this browser, or it took too long. Start a new sign-in.")
	if len(state) < 12 {
		return nil, bad
	}
	v := sessioncookie.Value(r, sessioncookie.Name(loginCookiePre+state[:12], secure))
	if v == "" {
		return nil, bad
	}
	var st loginState
	if err := securecookie.DecodeMulti(loginCookiePre, v, &st, h.shared.codecs.login...); err != nil {
		return nil, bad
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1 ||
		time.Since(time.Unix(st.Issued, 0)) > h.cfg.loginTimeout {
		return nil, bad
	}
	return &st, nil
}

// k1Error turns K1's error= answer into a readable refusal. Anyone can
// link to the callback with an error and a description of their own, so
// K1's words are shown only for a login this browser started (pending);
// any other such answer gets the page of a login that did not start here.
// The reason keeps the code either way (metrics bound its values).
func k1Error(code, desc string, pending bool) *loginFailure {
	reason := "k1_error_" + sanitizeCode(code)
	if !pending {
		return fail(http.StatusBadRequest, reason, "Sign-in expired or started elsewhere",
			"This sign-in did not start in this browser, or it took too long. Start a new sign-in.")
	}
	msg := "KaseyaOne did not complete the sign-in"
	switch code {
	case "access_denied":
		msg = "KaseyaOne denied access."
	case "login_required", "interaction_required", "consent_required":
		msg = "KaseyaOne needs you to sign in again."
	case "temporarily_unavailable", "server_error":
		msg = "KaseyaOne had a problem. Please try again in a minute."
	}
	f := fail(http.StatusBadRequest, reason, "KaseyaOne did not sign you in", msg)
	if desc != "" {
		f.message += " (" + strings.ToValidUTF8(truncate(desc, 200), "") + ")"
	}
	if code == "access_denied" {
		f.status = http.StatusForbidden
	}
	return f
}

// sanitizeCode keeps an OAuth error code safe for logs and metric labels.
func sanitizeCode(s string) string {
	s = truncate(s, 40)
	return strings.Map(func(c rune) rune {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			return c
		}
		return -1
	}, strings.ToLower(s))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// validTenantID accepts tenant ids that are safe in URLs, cookies and
// headers.
func validTenantID(t string) bool {
	// "." and ".." are path segments, never tenants.
	if t == "" || len(t) > 128 || strings.Trim(t, ".") == "" {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c == '-' || c == '_' || c == '.' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}
