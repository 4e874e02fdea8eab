package caddymodule

import (
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// The identity headers k1sso sets (X-K1-Email, X-K1-Subject, X-BMS-User,
// X-BMS-Tenant, X-BMS-Roles, X-K1-Assertion), in canonical form: they are
// stored under these keys, so Caddy's request_header, header_up,
// {http.request.header.*} and the hop-by-hop rules find them as they find
// any header. Clients' copies are always deleted first.
const (
	hdrEmail     = "X-K1-Email"
	hdrSubject   = "X-K1-Subject"
	hdrUser      = "X-Bms-User"
	hdrTenant    = "X-Bms-Tenant"
	hdrRoles     = "X-Bms-Roles"
	hdrAssertion = "X-K1-Assertion"
)

var identityHeaders = [...]string{hdrEmail, hdrSubject, hdrUser, hdrTenant, hdrRoles, hdrAssertion}

// derived is what a session means right now: its directory account and a
// signed assertion, computed once and reused until the directory changes or
// the assertion nears its expiry.
type derived struct {
	gen       uint64
	acc       *account
	issuer    *string // shared by the sessions of a site; see issuerOf
	assertion assertion
}

// fresh reports whether the assertion is still far enough from its expiry.
func (d *derived) fresh(now time.Time) bool {
	return now.Unix() < d.assertion.exp-int64(assertionRefresh/time.Second)
}

// identity returns the session's current identity, or nil when the account
// is gone from the directory (the session then carries no identity).
func (h *Handler) identity(o origin, e *sessionEntry, now time.Time) *derived {
	gen := h.shared.dir.generation()
	d := e.derived.Load()
	if d != nil && d.gen == gen && d.fresh(now) && o.is(*d.issuer) {
		return d
	}
	iss := h.issuerOf(o)
	acc := h.shared.dir.account(e.s.Email(), e.s.Tenant())
	if acc == nil {
		return nil
	}
	as, err := h.shared.signer.sign(*iss, e.s.Subject(), e.s.Email(), acc, now)
	if err != nil {
		h.logger.Error("signing the identity assertion", zap.Error(err))
		return nil
	}
	d = &derived{gen: gen, acc: acc, issuer: iss, assertion: as}
	e.derived.Store(d)
	return d
}

// issuerOf is the iss of assertions: the request's origin (external_url
// when it is set). The last one is kept so that the sessions of a site
// share one copy instead of one each.
func (h *Handler) issuerOf(o origin) *string {
	iss := o.String()
	if last := h.shared.lastIssuer.Load(); last != nil && *last == iss {
		return last
	}
	h.shared.lastIssuer.Store(&iss)
	return &iss
}

// setIdentity sets the identity headers and the http.auth.user.*
// placeholders, then the operator's extra headers (which may use them).
func (h *Handler) setIdentity(r *http.Request, e *sessionEntry, d *derived) {
	// One backing array for all six values; each header gets its own
	// one-element, full-capacity slice so an append elsewhere reallocates.
	v := make([]string, len(identityHeaders))
	v[0], v[1], v[2], v[3], v[4], v[5] = e.s.Email(), e.s.Subject(), d.acc.BMSUser, d.acc.Tenant, d.acc.roles,
		h.shared.signer.encode(*d.issuer, e.s.Subject(), e.s.Email(), d.acc, &d.assertion)
	hdr := r.Header
	for i, name := range identityHeaders {
		hdr[name] = v[i : i+1 : i+1]
	}
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	repl.Set("http.auth.user.id", d.acc.BMSUser)
	repl.Set("http.auth.user.email", e.s.Email())
	repl.Set("http.auth.user.tenant", d.acc.Tenant)
	repl.Set("http.auth.user.k1_sub", e.s.Subject())
	repl.Set("http.auth.user.roles", d.acc.roles)
	for name, val := range h.Headers {
		hdr.Set(name, repl.ReplaceAll(val, ""))
	}
}

// stripIdentityHeaders deletes every client copy of an identity header or
// an operator-configured header, whatever its case and with '_' for '-',
// and takes their names out of the client's Connection header, where they
// would make the proxy delete the headers k1sso sets (hop-by-hop rules).
// Client copies of the path-override headers go too.
func stripIdentityHeaders(hdr http.Header, extra map[string]string) {
	for k := range hdr {
		if k == "Connection" {
			stripConnectionTokens(hdr, extra)
			continue
		}
		if isIdentityName(k, extra) || isPathOverride(k) {
			delete(hdr, k)
		}
	}
}

// pathOverrides are request headers that servers behind a proxy read as
// the path to route by instead of the request line's: IIS rewrite setups,
// Symfony and Zend (X-Original-URL, X-Rewrite-URL), auth proxies'
// conventions (X-Original-URI, X-Forwarded-Uri). k1sso decides on the
// path it forwards, so a client's copy of them would let a request to a
// public path reach any page.
var pathOverrides = []string{"X-Original-Url", "X-Rewrite-Url", "X-Original-Uri", "X-Forwarded-Uri"}

// isPathOverride reports whether a header name is (a variant of) one of
// pathOverrides.
func isPathOverride(k string) bool {
	if len(k) < len("X-Rewrite-Url") || (k[0] != 'X' && k[0] != 'x') {
		return false
	}
	for _, name := range pathOverrides {
		if sameHeaderName(k, name) {
			return true
		}
	}
	return false
}

// validHeaderValue rejects control characters, which could split headers.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// isIdentityName reports whether a header name is (a variant of) an
// identity header or an operator-configured one.
func isIdentityName(k string, extra map[string]string) bool {
	if isIdentityHeader(k) {
		return true
	}
	for name := range extra {
		if sameHeaderName(k, name) {
			return true
		}
	}
	return false
}

// stripConnectionTokens removes identity names from the Connection header.
// Values without such a token (keep-alive, close) are left as they are.
func stripConnectionTokens(hdr http.Header, extra map[string]string) {
	vals := hdr["Connection"]
	changed := false
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			if isIdentityName(textproto.TrimString(tok), extra) {
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	var keep []string
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = textproto.TrimString(tok); tok != "" && !isIdentityName(tok, extra) {
				keep = append(keep, tok)
			}
		}
	}
	if len(keep) == 0 {
		delete(hdr, "Connection")
		return
	}
	hdr["Connection"] = []string{strings.Join(keep, ", ")}
}

// stripIdentityTrailers keeps identity headers out of the request's
// trailers, which Caddy forwards after the body. A declared identity
// trailer (in the Trailer header) refuses the request (false). Undeclared
// ones net/http adds to r.Trailer only when the body is read to its end, so
// the body is wrapped to delete them at that moment, before anything after
// k1sso copies the trailers.
func (h *Handler) stripIdentityTrailers(r *http.Request) bool {
	if r.Trailer == nil {
		// No Trailer header: net/http puts trailers into a new map on its
		// own copy of the request, which nothing after k1sso sees.
		return true
	}
	for k := range r.Trailer {
		if isIdentityName(k, h.Headers) {
			return false
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerGuard{ReadCloser: r.Body, trailer: r.Trailer, extra: h.Headers}
	}
	return true
}

// trailerGuard deletes identity trailers when the body reaches its end.
type trailerGuard struct {
	io.ReadCloser
	trailer http.Header
	extra   map[string]string
}

func (g *trailerGuard) Read(p []byte) (int, error) {
	n, err := g.ReadCloser.Read(p)
	if err == io.EOF {
		for k := range g.trailer {
			if isIdentityName(k, g.extra) {
				delete(g.trailer, k)
			}
		}
	}
	return n, err
}

// isIdentityHeader reports whether a header name is (a variant of) one of
// the identity headers.
func isIdentityHeader(k string) bool {
	// Cheap first test: every identity header starts with X- (or x_...).
	if len(k) < 9 || (k[0] != 'X' && k[0] != 'x') {
		return false
	}
	for _, name := range identityHeaders {
		if sameHeaderName(k, name) {
			return true
		}
	}
	return false
}

// sameHeaderName compares header names ASCII case-insensitively, treating
// '_' and '-' as equal (many servers and CGI map one to the other).
func sameHeaderName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == '_' {
			x = '-'
		}
		if y == '_' {
			y = '-'
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
