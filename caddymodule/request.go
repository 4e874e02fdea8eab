package caddymodule

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sessionState is what a request's session cookie amounts to. ServeHTTP
// decides it once (classify); every branch and endpoint reads it instead of
// asking the cache, the revocations and the directory again, so no two of
// them can disagree about one request.
type sessionState uint8

const (
	// sessionNone: no session cookie, or one that is tampered with,
	// expired, or of another deployment.
	sessionNone sessionState = iota
	// sessionIdle: a valid cookie of a session that went unused for
	// session_idle_timeout. It counts as no session; only front-channel
	// logout reads its sid, which the cookie still proves.
	sessionIdle
	// sessionRevoked: ended by a logout (here, at K1, at another
	// instance) or an operator's revocation.
	sessionRevoked
	// sessionStale: the revocations are out of sync with the store, so
	// the session may have been revoked elsewhere.
	sessionStale
	// sessionNoTenant: signed in at K1, no tenant chosen yet.
	sessionNoTenant
	// sessionNoAccount: its account in its tenant is gone from the
	// directory.
	sessionNoAccount
	// sessionActive: the session carries an identity (request.id).
	sessionActive
)

// request is what ServeHTTP knows about a request before it takes any
// branch, computed once by classify.
type request struct {
	// now is the clock of sessions (shared.now), read once per request.
	now time.Time
	// origin is this site as the browser sees it.
	origin origin
	// secure: k1sso's cookies are Secure and __Host- prefixed.
	secure bool
	state  sessionState
	// entry is the session the cookie names: nil for sessionNone only.
	entry *sessionEntry
	// id is the identity of a sessionActive session.
	id *derived
	// logoutPath: the path is BMS's logout_path (isLogoutPath).
	logoutPath bool

	// The whole session and whether the request is a navigation are read
	// when first asked for: most requests never need them.
	full    *session
	fullSet bool
	nav     uint8 // 0 not asked yet, 1 no, 2 yes
}

// classify reads the request's session and what it means now.
func (h *Handler) classify(r *http.Request) request {
	rq := request{now: h.shared.now(), origin: h.originOf(r)}
	rq.secure = rq.origin.secure()
	rq.logoutPath = h.isLogoutPath(r.URL.Path)
	e := h.shared.lookupSession(r, rq.secure, rq.now)
	if e == nil {
		return rq
	}
	rq.entry = e
	switch revoked, stale := h.revocationState(e); {
	case h.idleOver(e, rq.now):
		rq.state = sessionIdle
	case revoked:
		rq.state = sessionRevoked
	case stale:
		rq.state = sessionStale
	case e.s.Tenant() == "":
		rq.state = sessionNoTenant
	default:
		if rq.id = h.identity(rq.origin, e, rq.now); rq.id != nil {
			rq.state = sessionActive
		} else {
			rq.state = sessionNoAccount
		}
	}
	return rq
}

// signedIn reports whether the request has a session that is neither over
// nor refused: active, or waiting for a tenant or an account.
func (rq *request) signedIn() bool { return rq.state >= sessionNoTenant }

// active is the session when it carries an identity, else nil. It is the
// one definition of an active session: shortcuts that skip K1 (login,
// initiate, replay) use it, so a session that lost its identity cannot
// bounce between login and target forever.
func (rq *request) active() *sessionEntry {
	if rq.state != sessionActive {
		return nil
	}
	return rq.entry
}

// fullSession is the request's whole session cookie decoded (with its ID
// token and company), which the cache does not keep; decoded once, and
// only where asked for. Like shared.fullSession it does not check
// revocations: callers decide by rq.state.
func (h *Handler) fullSession(r *http.Request, rq *request) *session {
	if !rq.fullSet {
		rq.full, rq.fullSet = h.shared.fullSession(r, rq.secure), true
	}
	return rq.full
}

// navigation reports whether the request is a browser navigation
// (isNavigation), read once.
func (rq *request) navigation(r *http.Request) bool {
	if rq.nav == 0 {
		rq.nav = 1
		if isNavigation(r) {
			rq.nav = 2
		}
	}
	return rq.nav == 2
}

// origin is the scheme and host of this site for the browser: external_url
// when it is set, else the request's Host with https when it came over TLS.
type origin struct {
	scheme, host string
	ext          *url.URL // external_url; nil: taken from the request
	extStr       string   // ext.String(), kept by Provision
}

// originOf is the request's origin; the one place scheme and host are
// derived.
func (h *Handler) originOf(r *http.Request) origin {
	if ext := h.cfg.external; ext != nil {
		return origin{scheme: ext.Scheme, host: ext.Host, ext: ext, extStr: h.externalStr}
	}
	if r.TLS != nil {
		return origin{scheme: "https", host: r.Host}
	}
	return origin{scheme: "http", host: r.Host}
}

// secure reports whether cookies must be Secure (and __Host- prefixed).
func (o origin) secure() bool { return o.scheme == "https" }

// String is scheme://host.
func (o origin) String() string {
	switch {
	case o.extStr != "":
		return o.extStr
	case o.ext != nil:
		return o.ext.String()
	}
	return o.scheme + "://" + o.host
}

// url is the origin as a URL (scheme and host only).
func (o origin) url() *url.URL {
	if o.ext != nil {
		return o.ext
	}
	return &url.URL{Scheme: o.scheme, Host: o.host}
}

// is reports whether s is this origin, without building its string on
// every request (the assertion issuer is checked on each one).
func (o origin) is(s string) bool {
	if o.ext != nil {
		return s == o.String()
	}
	return len(s) == len(o.scheme)+3+len(o.host) && strings.HasPrefix(s, o.scheme) &&
		s[len(o.scheme):len(o.scheme)+3] == "://" && strings.HasSuffix(s, o.host)
}
