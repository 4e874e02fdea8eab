package oidcrp

import (
	"context"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Provider is what discovery yields: the provider's endpoints and
// capabilities, and its key set.
type Provider struct {
	c          *Client
	oidc       *oidc.Provider
	keys       *keySet
	endSession string
	algs       []string
	issParam   bool
	scopes     []string
}

// ProviderConfig describes a provider without discovery, like go-oidc's
// ProviderConfig: for providers without a discovery document, and tests.
type ProviderConfig struct {
	// AuthURL, TokenURL, UserInfoURL, JWKSURL and EndSessionURL are the
	// endpoints of the discovery members of the same names.
	AuthURL, TokenURL, UserInfoURL, JWKSURL, EndSessionURL string
	// Algorithms are the accepted ID token signing algorithms; nil means
	// RS256. none and HMAC are dropped.
	Algorithms []string
	// ScopesSupported is discovery's scopes_supported.
	ScopesSupported []string
	// IssParameterSupported is discovery's
	// authorization_response_iss_parameter_supported (RFC 9207).
	IssParameterSupported bool
}

// NewProvider returns the provider pc describes, issued by the Client's
// issuer, as if discovery had found it (Provider does not return it).
func (c *Client) NewProvider(pc ProviderConfig) *Provider {
	algs := []string{oidc.RS256}
	if pc.Algorithms != nil {
		algs = slices.DeleteFunc(slices.Clone(pc.Algorithms), func(a string) bool { return !slices.Contains(signingAlgs, a) })
	}
	op := (&oidc.ProviderConfig{IssuerURL: c.cfg.Issuer, AuthURL: pc.AuthURL, TokenURL: pc.TokenURL,
		UserInfoURL: pc.UserInfoURL, JWKSURL: pc.JWKSURL, Algorithms: algs}).NewProvider(c.ctx)
	return &Provider{c: c, oidc: op, keys: newKeySet(pc.JWKSURL, c.http, algs, c.cfg.MinRefetch),
		endSession: pc.EndSessionURL, algs: algs, issParam: pc.IssParameterSupported, scopes: pc.ScopesSupported}
}

// Issuer is the provider's issuer, the configured one (discovery checked
// that it publishes exactly that).
func (p *Provider) Issuer() string { return p.c.cfg.Issuer }

// Endpoint is the provider's authorization and token endpoint, for an
// oauth2.Config.
func (p *Provider) Endpoint() oauth2.Endpoint { return p.oidc.Endpoint() }

// UserInfoEndpoint is the provider's userinfo endpoint, "" without one.
func (p *Provider) UserInfoEndpoint() string { return p.oidc.UserInfoEndpoint() }

// EndSessionEndpoint is the provider's end_session_endpoint (RP-Initiated
// Logout 1.0), "" without one.
func (p *Provider) EndSessionEndpoint() string { return p.endSession }

// IssParameterSupported reports whether the provider puts iss in every
// authorization response (RFC 9207), so that a response without one must
// be refused.
func (p *Provider) IssParameterSupported() bool { return p.issParam }

// SupportsScope reports whether discovery's scopes_supported names scope.
func (p *Provider) SupportsScope(scope string) bool { return slices.Contains(p.scopes, scope) }

// Algorithms are the ID token signing algorithms accepted: those the
// provider advertises, without none and HMAC.
func (p *Provider) Algorithms() []string { return slices.Clone(p.algs) }

// KeysFetched returns when the key set was last fetched, and whether it
// has been fetched successfully at all. It does not wait for a fetch
// under way (ok is false then).
func (p *Provider) KeysFetched() (at time.Time, ok bool) { return p.keys.lastFetch() }

// UserInfo asks the userinfo endpoint with the access token of ts
// (through the Client's HTTPClient).
func (p *Provider) UserInfo(ctx context.Context, ts oauth2.TokenSource) (*oidc.UserInfo, error) {
	return p.oidc.UserInfo(oidc.ClientContext(ctx, p.c.http), ts)
}

// verifier is go-oidc's verifier reduced to the signature: the alg must be
// one discovery advertised, the key one of keys. iss, aud and the times
// are checked by the callers, so that each failure has its Reason.
func (p *Provider) verifier(keys oidc.KeySet) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(p.Issuer(), keys, &oidc.Config{
		SupportedSigningAlgs: p.algs,
		SkipClientIDCheck:    true,
		SkipIssuerCheck:      true,
		SkipExpiryCheck:      true,
	})
}

// verifySignature runs go-oidc's checks of the JWS against view and
// returns the token with its (not yet checked) claims.
func (p *Provider) verifySignature(ctx context.Context, view *keyView, raw string) (*oidc.IDToken, error) {
	ok := new(bool)
	t, err := p.verifier(signatureRecorder{view, ok}).Verify(ctx, raw)
	switch {
	case err == nil:
		return t, nil
	case *ok:
		return nil, failWith(ReasonClaims, err)
	default:
		return nil, failWith(ReasonSignature, err)
	}
}

// signatureRecorder is a keyView that notes a verified signature in ok:
// go-oidc formats the key set's error with %v, and an error after a
// verified signature is about the claims, not the signature.
type signatureRecorder struct {
	view *keyView
	ok   *bool
}

func (s signatureRecorder) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := s.view.VerifySignature(ctx, raw)
	*s.ok = err == nil
	return payload, err
}
