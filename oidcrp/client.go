// Package oidcrp is the relying-party side of OpenID Connect, in the style
// of coreos/go-oidc (which it uses underneath): a Client discovers the
// provider lazily and retries with backoff, so its user can start and
// serve while the provider is down; the Provider it yields holds the
// discovery document (its issuer compared exactly, trailing slash
// included) and a JWKS key set with refetch budgets, and verifies ID
// tokens and back-channel logout tokens. Verification failures are
// *Error values with a Reason, for the caller to turn into its own pages
// and log lines: nothing here renders or logs anything.
package oidcrp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Defaults of the Config fields left zero.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// MaxAnswerBytes bounds the body of every answer from the provider.
// go-oidc reads discovery and userinfo answers whole, and a hostile or
// broken provider on a fast link can send gigabytes within the timeout;
// real answers are a few kilobytes.
const MaxAnswerBytes = 1 << 20

// ErrAnswerTooLarge ends the reading of an answer past MaxAnswerBytes.
var ErrAnswerTooLarge = errors.New("the provider's answer is larger than 1 MiB")

// ErrUnavailable means the discovery document could not be fetched (yet):
// the provider is unreachable or answered with an error.
var ErrUnavailable = errors.New("the OpenID provider is unreachable")

// IssuerMismatchError means the discovery document names another issuer
// than the configured one. The strings are compared exactly (OIDC
// Discovery §4.3), so "https://op/" and "https://op" differ.
type IssuerMismatchError struct {
	Configured string
	Published  string
}

// Error names both issuers and the discovery URL, for the administrator.
func (e *IssuerMismatchError) Error() string {
	return fmt.Sprintf("issuer: configured as %q, but the discovery document at %s publishes %q; the configured issuer must be exactly the one the provider publishes",
		e.Configured, DiscoveryURL(e.Configured), e.Published)
}

// DiscoveryError is a discovery document that was fetched but cannot be
// used (no jwks_uri, no acceptable signing algorithm).
type DiscoveryError struct {
	// Problem says what is wrong, as a clause ("it has no jwks_uri").
	Problem string
}

// Error says what is wrong with the document.
func (e *DiscoveryError) Error() string { return "discovery: " + e.Problem }

// signingAlgs are the ID token algorithms accepted when discovery
// advertises them: go-oidc's asymmetric ones. Never none, never HMAC (its
// key would be the client secret, or a public key misused).
var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// DiscoveryURL is where the discovery document of issuer is fetched
// (go-oidc builds the same URL).
func DiscoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// Config configures a Client. Only Issuer and ClientID are required.
type Config struct {
	// Issuer is the provider's issuer, exactly as it publishes it.
	Issuer string
	// ClientID is this relying party's client ID, the audience of its
	// tokens.
	ClientID string
	// Transport makes the requests to the provider (discovery, JWKS,
	// token, userinfo); nil means http.DefaultTransport. Answers are
	// bounded to MaxAnswerBytes on top of it.
	Transport http.RoundTripper
	// Timeout bounds every call the Client makes on its own (discovery, a
	// JWKS fetch) and is the Timeout of HTTPClient. Zero: DefaultTimeout.
	Timeout time.Duration
	// MinBackoff is the wait after a failed discovery; each further
	// failure doubles it up to MaxBackoff. A discovery document that
	// cannot be used is retried after MaxBackoff. Zero: the defaults.
	MinBackoff, MaxBackoff time.Duration
	// MinRefetch is how long a JWKS refetch that did not help (the kid was
	// still unknown, or the fetch failed) keeps the same kind of token
	// from causing another one. A rotation is picked up by the very next
	// token however soon it comes, while a flood of tokens with made-up
	// kids costs the provider one fetch per interval and kind of token.
	// Zero: DefaultMinRefetch.
	MinRefetch time.Duration
	// Now is the clock tokens are judged by (exp, iat, nbf). Nil: time.Now.
	Now func() time.Time
	// CallContext, if set, derives the context of a discovery from the
	// Client's own (which outlives any request) and the context of the
	// request that needed it, e.g. to carry its trace span over.
	CallContext func(base, caller context.Context) context.Context
	// OnDiscovery, if set, is told the outcome of every discovery attempt:
	// err is nil on success, an *IssuerMismatchError or *DiscoveryError
	// when the document cannot be used, else the error that kept it from
	// being fetched (which Provider reports as ErrUnavailable); retryIn is
	// how long until the next attempt. It is the place to log.
	OnDiscovery func(err error, retryIn time.Duration)
}

// Client talks to one OpenID provider. Discovery is fetched on first use
// and retried with backoff; concurrent callers share one fetch.
type Client struct {
	cfg  Config
	http *http.Client
	ctx  context.Context // carries http; lives as long as the Client's user

	mu       sync.Mutex
	p        *Provider
	failure  error     // why the last discovery failed: ErrUnavailable or a misconfiguration
	lastErr  error     // the network error behind ErrUnavailable
	loadedAt time.Time // when p was discovered
	nextTry  time.Time
	backoff  time.Duration
	inflight chan struct{}
}

// New returns a Client for cfg. ctx must live as long as the Client is
// used: go-oidc keeps it for every later JWKS and userinfo fetch, so it
// should not be a request's context.
func New(ctx context.Context, cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = DefaultMinRefetch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := &http.Client{Timeout: cfg.Timeout, Transport: boundedTransport{base: cfg.Transport}}
	return &Client{cfg: cfg, http: hc, ctx: oidc.ClientContext(ctx, hc)}
}

// HTTPClient is the client every request to the provider goes through;
// use it for calls of your own (put it in the context under
// oauth2.HTTPClient for x/oauth2).
func (c *Client) HTTPClient() *http.Client { return c.http }

// Issuer is the configured issuer.
func (c *Client) Issuer() string { return c.cfg.Issuer }

// Loaded returns the discovered provider and when it was discovered, or
// nil before the first successful discovery. It never fetches.
func (c *Client) Loaded() (*Provider, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p, c.loadedAt
}

// LastError is the network error behind the last ErrUnavailable, nil when
// there was none.
func (c *Client) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// Warm fetches discovery in the background, retrying with backoff until it
// succeeds or ctx ends.
func (c *Client) Warm(ctx context.Context) {
	for {
		if _, err := c.Provider(ctx); err == nil {
			return
		}
		c.mu.Lock()
		wait := time.Until(c.nextTry)
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, c.cfg.MinBackoff)):
		}
	}
}

// Provider returns the discovered provider, fetching discovery when it is
// not known yet and the backoff allows. The error is ErrUnavailable, an
// *IssuerMismatchError or a *DiscoveryError; during the backoff it is the
// error of the last attempt.
func (c *Client) Provider(ctx context.Context) (*Provider, error) {
	c.mu.Lock()
	if c.p != nil {
		p := c.p
		c.mu.Unlock()
		return p, nil
	}
	if ch := c.inflight; ch != nil {
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ErrUnavailable
		}
		c.mu.Lock()
		p, failure := c.p, c.failure
		c.mu.Unlock()
		if p == nil {
			return nil, failure
		}
		return p, nil
	}
	if time.Now().Before(c.nextTry) {
		failure := c.failure
		c.mu.Unlock()
		return nil, failure
	}
	ch := make(chan struct{})
	c.inflight = ch
	c.mu.Unlock()

	p, err := c.discover(ctx)

	c.mu.Lock()
	c.inflight = nil
	var mismatch *IssuerMismatchError
	var invalid *DiscoveryError
	switch {
	case errors.As(err, &mismatch) || errors.As(err, &invalid):
		// Retried, but only at the longest backoff: the provider's
		// document may be corrected without a change here, and once a
		// minute costs it nothing.
		c.failure, c.backoff = err, c.cfg.MaxBackoff
		c.nextTry = time.Now().Add(c.backoff)
	case err != nil:
		c.failure = ErrUnavailable
		c.backoff = min(max(c.backoff*2, c.cfg.MinBackoff), c.cfg.MaxBackoff)
		c.nextTry = time.Now().Add(c.backoff)
		c.lastErr = err
	default:
		c.p, c.failure, c.loadedAt = p, nil, time.Now()
		c.backoff = 0
	}
	failure, retryIn := c.failure, c.backoff
	c.mu.Unlock()
	close(ch)
	if f := c.cfg.OnDiscovery; f != nil {
		f(err, retryIn)
	}
	if err != nil {
		return nil, failure
	}
	return p, nil
}

// discover fetches discovery under the Client's own context (which must
// outlive the request).
func (c *Client) discover(caller context.Context) (*Provider, error) {
	base := c.ctx
	if c.cfg.CallContext != nil {
		base = c.cfg.CallContext(base, caller)
	}
	ctx, cancel := context.WithTimeout(base, c.cfg.Timeout)
	defer cancel()
	prov, err := oidc.NewProvider(ctx, c.cfg.Issuer)
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		return nil, &IssuerMismatchError{Configured: c.cfg.Issuer, Published: mismatch.Discovered}
	}
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKS       string   `json:"jwks_uri"`
		EndSession string   `json:"end_session_endpoint"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
		IssParam   bool     `json:"authorization_response_iss_parameter_supported"`
		Scopes     []string `json:"scopes_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return nil, err
	}
	// An ID token's alg must be one the provider advertises (OIDC Core
	// §3.1.3.7); without the list, RS256 (OIDC Discovery §3).
	algs := []string{oidc.RS256}
	if meta.Algs != nil {
		algs = slices.DeleteFunc(slices.Clone(meta.Algs), func(a string) bool { return !slices.Contains(signingAlgs, a) })
		if len(algs) == 0 {
			return nil, &DiscoveryError{Problem: fmt.Sprintf("id_token_signing_alg_values_supported %q names no accepted algorithm (%s)",
				meta.Algs, strings.Join(signingAlgs, ", "))}
		}
	}
	if meta.JWKS == "" {
		return nil, &DiscoveryError{Problem: "it has no jwks_uri"}
	}
	// Our own key set, not go-oidc's RemoteKeySet: that one refetches on
	// every unknown kid without a rate limit.
	return &Provider{
		c:          c,
		oidc:       prov,
		keys:       newKeySet(meta.JWKS, c.http, algs, c.cfg.MinRefetch),
		endSession: meta.EndSession,
		algs:       algs,
		issParam:   meta.IssParam,
		scopes:     meta.Scopes,
	}, nil
}

// boundedTransport bounds every answer's body to MaxAnswerBytes. It sits
// in the client, not at each caller, because go-oidc and x/oauth2 read
// answers themselves.
type boundedTransport struct {
	base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if resp != nil {
		resp.Body = &boundedBody{ReadCloser: resp.Body, left: MaxAnswerBytes}
	}
	return resp, err
}

// boundedBody is a response body that fails past its limit, so the caller
// sees an error rather than a cut document.
type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			return 0, ErrAnswerTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
