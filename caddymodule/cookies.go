package caddymodule

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
)

// Cookie names. On https they get the __Host- prefix, which browsers accept
// only with Secure, Path=/ and no Domain, so no subdomain can plant them.
const (
	sessionCookie    = "k1sso"
	loginCookiePre   = "k1sso-login-"
	chunkSize        = 3800 // under the ~4096-byte per-cookie limit of browsers
	maxSessionChunks = 4
	maxLoginCookies  = 4 // concurrent logins (tabs) one browser may have pending
	stateMaxAge      = time.Hour
)

// cookieCodecs encrypt (AES-256-CTR) and sign (HMAC-SHA256) cookies with keys
// derived from the cookie secrets. The first secret encodes; all decode.
type cookieCodecs struct {
	session []securecookie.Codec
	login   []securecookie.Codec
	csrf    []byte // HMAC key of CSRF tokens
}

// newCookieCodecs derives every cookie key from a secret and the
// deployment: the issuer and the client id. Operators reuse a
// cookie_secret across sites (a staging copy, another BMS behind another K1
// client); a session, login or admin cookie of one of them must be no
// cookie at all on the other. Rotation is unaffected: every secret is
// bound to the same deployment.
func newCookieCodecs(cfg *config) *cookieCodecs {
	c := &cookieCodecs{}
	d := deployment{issuer: cfg.issuer, clientID: cfg.clientID}
	for i, secret := range cfg.cookieKeys {
		c.session = append(c.session, newCodec(secret, d, "session", 0))
		c.login = append(c.login, newCodec(secret, d, "login", stateMaxAge))
		if i == 0 {
			c.csrf = deriveKey(secret, d, "k1sso csrf")
		}
	}
	return c
}

// deployment is what cookie keys are bound to besides the secret.
type deployment struct{ issuer, clientID string }

// newCodec derives separate keys per purpose so that a cookie of one kind
// can never be decoded as another.
func newCodec(secret []byte, d deployment, purpose string, maxAge time.Duration) securecookie.Codec {
	sc := securecookie.New(deriveKey(secret, d, "k1sso "+purpose+" mac"), deriveKey(secret, d, "k1sso "+purpose+" enc"))
	sc.SetSerializer(securecookie.JSONEncoder{})
	sc.MaxAge(int(maxAge / time.Second)) // 0: expiry is checked on the decoded value
	sc.MaxLength(chunkSize * maxSessionChunks)
	return sc
}

// deriveKey is HKDF-SHA256 of the secret with the purpose and the
// deployment as its info. The parts are length-prefixed, so no choice of
// issuer and client id yields another's info.
func deriveKey(secret []byte, d deployment, purpose string) []byte {
	info := purpose + "\x00" + strconv.Itoa(len(d.issuer)) + ":" + d.issuer + strconv.Itoa(len(d.clientID)) + ":" + d.clientID
	k, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		panic(err) // only for lengths hkdf cannot produce; 32 always works
	}
	return k
}

// cookieName adds the __Host- prefix when the cookie will be Secure.
func cookieName(base string, secure bool) string {
	if secure {
		return "__Host-" + base
	}
	return base
}

// newCookie returns a cookie with k1sso's attributes: HttpOnly, Lax, Path=/,
// Secure on https.
func newCookie(name, value string, secure bool, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
		c.Expires = time.Now().Add(maxAge)
	} else if maxAge < 0 {
		c.MaxAge = -1
	}
	return c
}

// expireCookie tells the browser to drop a cookie.
func expireCookie(w http.ResponseWriter, name string, secure bool) {
	http.SetCookie(w, newCookie(name, "", secure, -1))
}

// errTooLarge is returned when an encoded session needs more chunks than a
// browser can be expected to send back.
var errTooLarge = errors.New("session cookie too large")

// writeChunked sets an encoded value as one cookie, or as several chunks
// `name`, `name-1`, ... when it is larger than one cookie may be. A chunked
// first cookie starts with "<count>." so stale extra chunks are ignored.
// Chunks the request had beyond the new count are expired.
func writeChunked(w http.ResponseWriter, r *http.Request, name, value string, secure bool, maxAge time.Duration) error {
	n := (len(value) + chunkSize - 1) / chunkSize
	if n > maxSessionChunks {
		return errTooLarge
	}
	if n <= 1 {
		http.SetCookie(w, newCookie(name, value, secure, maxAge))
	} else {
		for i := 0; i < n; i++ {
			part := value[i*chunkSize : min((i+1)*chunkSize, len(value))]
			cn := name
			if i == 0 {
				part = strconv.Itoa(n) + "." + part
			} else {
				cn = name + "-" + strconv.Itoa(i)
			}
			http.SetCookie(w, newCookie(cn, part, secure, maxAge))
		}
	}
	for i := max(n, 1); i < maxSessionChunks; i++ {
		cn := name + "-" + strconv.Itoa(i)
		if _, err := r.Cookie(cn); err == nil {
			expireCookie(w, cn, secure)
		}
	}
	return nil
}

// expireChunked drops a chunked cookie and every chunk it may have had
// (the request's own cookies may already be stripped for the upstream).
func expireChunked(w http.ResponseWriter, name string, secure bool) {
	expireCookie(w, name, secure)
	for i := 1; i < maxSessionChunks; i++ {
		expireCookie(w, name+"-"+strconv.Itoa(i), secure)
	}
}

// readChunked reassembles a cookie written by writeChunked. It returns ""
// when the cookie is absent or its chunks are inconsistent.
func readChunked(r *http.Request, name string) string {
	first := cookieValue(r, name)
	if first == "" {
		return ""
	}
	dot := strings.IndexByte(first, '.')
	if dot < 0 || dot > 2 {
		return first
	}
	n, err := strconv.Atoi(first[:dot])
	if err != nil || n < 2 || n > maxSessionChunks {
		return ""
	}
	var b strings.Builder
	b.WriteString(first[dot+1:])
	for i := 1; i < n; i++ {
		part := cookieValue(r, name+"-"+strconv.Itoa(i))
		if part == "" {
			return ""
		}
		b.WriteString(part)
	}
	return b.String()
}

// cookieValue returns the value of the request's first cookie named
// exactly name, or "". Names are read as net/http reads them (the same
// textproto trimming of ASCII spaces, then an exact comparison), so a
// look-alike such as "\u00a0__Host-k1sso", which a sibling subdomain may
// set where the __Host- prefix forbids the real name, is another cookie: it
// is neither taken nor allowed to hide the real one.
//
// It is Request.Cookie without its per-cookie allocations and without its
// byte-by-byte check of the value (together about 1.5 µs for a 2 KB session
// cookie, on every request). Skipping that check changes no outcome: every
// value k1sso reads goes to a securecookie decoder, which accepts only
// base64 with a valid MAC; only a second cookie of the same exact name,
// which for __Host- names only this origin can set, would be chosen
// differently, and then no session is found rather than another one.
func cookieValue(r *http.Request, name string) string {
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			k, v, _ := strings.Cut(textproto.TrimString(part), "=")
			if textproto.TrimString(k) != name {
				continue
			}
			if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	return ""
}

// isOwnCookie reports whether a cookie is one of k1sso's: the session and
// its chunks, pending logins, the admin form cookie.
func isOwnCookie(name string) bool {
	name = strings.TrimPrefix(name, "__Host-")
	return name == sessionCookie || strings.HasPrefix(name, sessionCookie+"-")
}

// dropOwnCookies removes k1sso's own cookies (session, chunks, login
// states, admin nonce) from the request. Handler.forward (handler.go)
// does it, with dropCookies, right before the rest of the route and before
// the identity's placeholders are expanded, so neither the upstream nor
// {http.request.cookie.*} / {http.request.header.Cookie} ever see them.
func dropOwnCookies(r *http.Request) { dropCookies(r, nil) }

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
