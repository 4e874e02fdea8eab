package caddymodule

import (
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/k1sso/k1sso/sessioncookie"
)

// Cookie names. On https they get the __Host- prefix, which browsers accept
// only with Secure, Path=/ and no Domain, so no subdomain can plant them.
const (
	sessionCookie   = "k1sso"
	loginCookiePre  = "k1sso-login-"
	maxLoginCookies = 4 // concurrent logins (tabs) one browser may have pending
	stateMaxAge     = time.Hour
)

// cookieCodecs encrypt (AES-256-CTR) and sign (HMAC-SHA256) cookies with keys
// derived from the cookie secrets. The first secret encodes; all decode.
type cookieCodecs struct {
	session sessioncookie.Codecs
	login   sessioncookie.Codecs
	csrf    []byte // HMAC key of CSRF tokens
}

// newCookieCodecs derives every cookie key from a secret and the
// deployment (the issuer and the client id), so that a session, login or
// admin cookie of one site is no cookie at all on another site that reuses
// its cookie_secret.
func newCookieCodecs(cfg *config) *cookieCodecs {
	d := cookieDeployment(cfg)
	c := &cookieCodecs{}
	for i, secret := range cfg.cookieKeys {
		c.session = append(c.session, newCodec(secret, d, "session", 0))
		c.login = append(c.login, newCodec(secret, d, "login", stateMaxAge))
		if i == 0 {
			c.csrf = d.Key(secret, "k1sso csrf")
		}
	}
	return c
}

// cookieDeployment is what this site's cookie keys are bound to besides the
// secret.
func cookieDeployment(cfg *config) sessioncookie.Deployment {
	return sessioncookie.Deployment{Issuer: cfg.issuer, ClientID: cfg.clientID}
}

// newCodec is the codec of one of k1sso's purposes. Every purpose is
// derived under "k1sso <purpose>", so keys of k1sso never equal those of
// another program that derives from the same secret.
func newCodec(secret []byte, d sessioncookie.Deployment, purpose string, maxAge time.Duration) securecookie.Codec {
	return d.Codec(secret, "k1sso "+purpose, maxAge)
}

// isOwnCookie reports whether a cookie is one of k1sso's: the session and
// its chunks, pending logins, the admin form cookie.
func isOwnCookie(name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	return name == sessionCookie || strings.HasPrefix(name, sessionCookie+"-")
}

// dropCookies removes from the request's Cookie header the cookies k1sso
// owns and those extra reports (BMS's, when a revoked session is sent to
// the login page). Cookie lines that need no change are not rewritten. The
// Header map is changed in place: Caddy's replacer reads the same map.
func dropCookies(r *http.Request, extra func(name string) bool) {
	lines := r.Header["Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := lines[:0]
	for _, line := range lines {
		if extra == nil && !strings.Contains(line, sessionCookie) {
			kept = append(kept, line)
			continue
		}
		var b strings.Builder
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			// "k1sso =v" is the cookie k1sso to net/http (and so to
			// Caddy's placeholders and to Go upstreams): drop it too.
			name = strings.TrimSpace(name)
			if part == "" || isOwnCookie(name) || (extra != nil && extra(name)) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	if len(kept) == 0 {
		delete(r.Header, "Cookie")
		return
	}
	r.Header["Cookie"] = kept
}
