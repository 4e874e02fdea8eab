package k1dev

import (
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// opClient adapts a configured Client to zitadel's op.Client.
type opClient struct {
	c *Client
}

var _ op.HasRedirectGlobs = opClient{}

func (o opClient) GetID() string                       { return o.c.ID }
func (o opClient) RedirectURIs() []string              { return o.c.RedirectURIs }
func (o opClient) PostLogoutRedirectURIs() []string    { return o.c.PostLogoutRedirectURIs }
func (o opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (o opClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (o opClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (o opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (o opClient) LoginURL(id string) string            { return "/login?authRequestID=" + url.QueryEscape(id) }
func (o opClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (o opClient) IDTokenLifetime() time.Duration       { return 10 * time.Minute }
func (o opClient) DevMode() bool                        { return false }
func (o opClient) IsScopeAllowed(string) bool           { return false }
func (o opClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (o opClient) ClockSkew() time.Duration             { return 0 }
func (o opClient) RedirectURIGlobs() []string           { return loopbackGlobs(o.c.RedirectURIs) }
func (o opClient) PostLogoutRedirectURIGlobs() []string {
	return loopbackGlobs(o.c.PostLogoutRedirectURIs)
}
func (o opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (o opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// portClasses match a port of one to five digits; both path.Match (used for
// post-logout URIs) and doublestar (redirect URIs) understand them, and
// neither lets them match ':', '@' or '/', so no host can be smuggled in.
var portClasses = []string{"[0-9]", "[0-9][0-9]", "[0-9][0-9][0-9]", "[0-9][0-9][0-9][0-9]", "[0-9][0-9][0-9][0-9][0-9]"}

// loopbackGlobs turns each registered loopback URI with a port
// (http://127.0.0.1:8080/p, http://localhost:8080/p, http://[::1]:8080/p)
// into globs that accept the same scheme, host and path on any port:
// RFC 8252 §7.3. Other URIs get no glob, so they match only exactly.
func loopbackGlobs(uris []string) []string {
	var globs []string
	for _, raw := range uris {
		u, ok := loopbackURL(raw)
		if !ok || u.Port() == "" || u.User != nil || u.Fragment != "" {
			continue
		}
		host := u.Hostname()
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		rest := strings.TrimPrefix(raw, u.Scheme+"://"+u.Host)
		for _, port := range portClasses {
			globs = append(globs, globQuote(u.Scheme+"://"+host+":")+port+globQuote(rest))
		}
	}
	return globs
}

// globQuote escapes glob metacharacters.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\*?[]{}`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// loopbackURL parses raw and reports whether it is an http(s) URL on a
// loopback host (localhost, 127.0.0.0/8, ::1).
func loopbackURL(raw string) (*url.URL, bool) {
	u, ok := op.HTTPLoopbackOrLocalhost(raw)
	return u, ok && u != nil
}
