package caddymodule

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
	"go.uber.org/zap"
)

// k1Timeout bounds every call to K1 (discovery, JWKS, token exchange,
// userinfo): a slow K1 gets a 503 page, not a hanging browser. A tunable so
// tests can shorten it.
var k1Timeout = newTunable(10 * time.Second)

// maxK1Answer bounds the body of every answer from K1. go-oidc reads
// discovery and userinfo answers whole, and a hostile or broken OP on a
// fast link can send gigabytes within k1Timeout; real answers are a few
// kilobytes.
const maxK1Answer = 1 << 20

// errK1AnswerTooLarge ends the reading of an answer past maxK1Answer.
var errK1AnswerTooLarge = errors.New("the KaseyaOne answer is larger than 1 MiB")

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
			return 0, errK1AnswerTooLarge
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

// Discovery backoff: the first retry after a failure waits minBackoff, each
// next one twice as long, up to maxBackoff. Variables so tests can shorten
// them.
var (
	minBackoff = newTunable(time.Second)
	maxBackoff = newTunable(time.Minute)
)

// errK1Unavailable means K1's discovery could not be fetched (yet).
var errK1Unavailable = errors.New("KaseyaOne is unreachable")

// misconfiguration is a discovery that succeeded but cannot be used: a
// mistake in the configuration or in K1's discovery document, not an
// outage. detail says what is wrong, for the administrator.
type misconfiguration interface {
	error
	reason() string // for logs and metrics
	detail() string
}

// issuerMismatchError means K1's discovery document names another issuer
// than the one configured. The strings are compared exactly (OIDC
// Discovery §4.3), so "https://k1/" and "https://k1" differ.
type issuerMismatchError struct {
	configured string
	published  string
}

func (e *issuerMismatchError) Error() string {
	return fmt.Sprintf("issuer: configured as %q, but the discovery document at %s publishes %q; the issuer option must be exactly the issuer KaseyaOne publishes",
		e.configured, discoveryURL(e.configured), e.published)
}

func (e *issuerMismatchError) reason() string { return "issuer_mismatch" }

func (e *issuerMismatchError) detail() string {
	return fmt.Sprintf("This proxy is configured with the issuer %q, but KaseyaOne's discovery document publishes the issuer %q. The two must be exactly the same.",
		e.configured, e.published)
}

// discoveryError is a discovery document k1sso cannot work with.
type discoveryError struct{ problem string }

func (e *discoveryError) Error() string  { return "discovery: " + e.problem }
func (e *discoveryError) reason() string { return "discovery_invalid" }
func (e *discoveryError) detail() string {
	return "KaseyaOne's discovery document cannot be used: " + e.problem + "."
}

// signingAlgs are the ID token algorithms k1sso accepts when discovery
// advertises them: go-oidc's asymmetric ones. Never none, never HMAC (its
// key would be the client secret, or a public key misused).
var signingAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}

// discoveryURL is where discovery of issuer is fetched (go-oidc builds the
// same URL).
func discoveryURL(issuer string) string {
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
}

// k1Client talks to KaseyaOne: discovery is fetched lazily and retried with
// backoff, so Caddy starts and logged-in users keep working while K1 is down.
type k1Client struct {
	issuer   string
	clientID string
	secret   string
	http     *http.Client
	ctx      context.Context // carries http; lives as long as the pooled state
	logger   *zap.Logger

	mu       sync.Mutex
	p        *k1Provider
	failure  error     // why the last discovery failed: errK1Unavailable or a misconfiguration
	lastErr  error     // the network error behind errK1Unavailable (login logs, diagnose.go)
	loadedAt time.Time // when p was discovered (status, adminapi.go)
	nextTry  time.Time
	backoff  time.Duration
	inflight chan struct{}
}

// k1Provider is what discovery yields.
type k1Provider struct {
	provider   *oidc.Provider
	keys       *keySet
	issuer     string
	clientID   string
	endSession string
	algs       []string
	// issParam: K1 puts iss in every authorization response (RFC 9207).
	issParam bool
	// offline: discovery's scopes_supported names offline_access.
	offline bool
}

// verifierWithSkew returns the verifier of ID tokens whose exp check allows
// skew: go-oidc has no leeway for exp, so its clock is set back by skew.
func (p *k1Provider) verifierWithSkew(skew time.Duration) *oidc.IDTokenVerifier {
	return p.newVerifier(p.keys.idTokens, skew, false)
}

// logoutVerifier checks the signature, iss and aud of back-channel logout
// tokens; unknown kids in them draw on their own refetch budget. Their
// times are checked by verifyLogoutToken, because exp may be absent.
func (p *k1Provider) logoutVerifier(skew time.Duration) *oidc.IDTokenVerifier {
	return p.newVerifier(p.keys.logoutTokens, skew, true)
}

func (p *k1Provider) newVerifier(keys oidc.KeySet, skew time.Duration, skipExpiry bool) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(p.issuer, keys, &oidc.Config{
		ClientID:             p.clientID,
		SupportedSigningAlgs: p.algs,
		SkipExpiryCheck:      skipExpiry,
		Now:                  func() time.Time { return time.Now().Add(-skew) },
	})
}

func newK1Client(ctx context.Context, cfg *config, logger *zap.Logger) *k1Client {
	hc := &http.Client{Timeout: k1Timeout.get(), Transport: k1Transport{}} // k1Transport: metrics.go
	return &k1Client{
		issuer:   cfg.issuer,
		clientID: cfg.clientID,
		secret:   cfg.clientSecret,
		http:     hc,
		// go-oidc keeps this context for every later JWKS fetch, so it must
		// not be a caddy.Context (cancelled on reload).
		ctx:    oidc.ClientContext(ctx, hc),
		logger: logger,
	}
}

// warm fetches discovery in the background after start, retrying with
// backoff until it succeeds or the pooled state is destroyed.
func (k *k1Client) warm(ctx context.Context) {
	for {
		if _, err := k.get(ctx); err == nil {
			return
		}
		k.mu.Lock()
		wait := time.Until(k.nextTry)
		k.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, minBackoff.get())):
		}
	}
}

// get returns the discovered provider, fetching discovery when it is not
// known yet and the backoff allows. Concurrent callers share one fetch.
func (k *k1Client) get(ctx context.Context) (*k1Provider, error) {
	k.mu.Lock()
	if k.p != nil {
		p := k.p
		k.mu.Unlock()
		return p, nil
	}
	if ch := k.inflight; ch != nil {
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, errK1Unavailable
		}
		k.mu.Lock()
		p, failure := k.p, k.failure
		k.mu.Unlock()
		if p == nil {
			return nil, failure
		}
		return p, nil
	}
	if time.Now().Before(k.nextTry) {
		failure := k.failure
		k.mu.Unlock()
		return nil, failure
	}
	ch := make(chan struct{})
	k.inflight = ch
	k.mu.Unlock()

	p, err := k.discover(ctx)

	k.mu.Lock()
	k.inflight = nil
	var mc misconfiguration
	switch {
	case errors.As(err, &mc):
		// Retried, but only at the longest backoff: the OP's document may
		// be corrected without a change here (a corrected Caddyfile gets a
		// new client anyway), and once a minute costs K1 nothing.
		k.failure, k.backoff = mc, maxBackoff.get()
		k.nextTry = time.Now().Add(k.backoff)
		fields := []zap.Field{zap.String("issuer", k.issuer), zap.String("discovery_url", discoveryURL(k.issuer)),
			zap.String("reason", mc.reason()), zap.Duration("retry_in", k.backoff), zap.Error(mc)}
		var mismatch *issuerMismatchError
		if errors.As(mc, &mismatch) {
			fields = append(fields, zap.String("published_issuer", mismatch.published))
		}
		k.logger.Error("KaseyaOne discovery cannot be used: check the issuer option and KaseyaOne's discovery document", fields...)
	case err != nil:
		k.failure = errK1Unavailable
		k.backoff = min(max(k.backoff*2, minBackoff.get()), maxBackoff.get())
		k.nextTry = time.Now().Add(k.backoff)
		k.lastErr = err
		k.logger.Warn("KaseyaOne discovery failed; will retry",
			zap.String("issuer", k.issuer), zap.Duration("retry_in", k.backoff), zap.Error(err))
	default:
		k.p, k.failure, k.loadedAt = p, nil, time.Now()
		k.backoff = 0
		k.logger.Info("KaseyaOne discovery loaded", zap.String("issuer", k.issuer))
	}
	failure := k.failure
	k.mu.Unlock()
	close(ch)
	if err != nil {
		return nil, failure
	}
	return p, nil
}

// discover fetches discovery under the client's own context (which must
// outlive the request), traced as part of the request that needed it.
func (k *k1Client) discover(caller context.Context) (*k1Provider, error) {
	ctx, cancel := context.WithTimeout(withSpanOf(k.ctx, caller), k1Timeout.get())
	defer cancel()
	prov, err := oidc.NewProvider(ctx, k.issuer)
	var mismatch *oidc.IssuerMismatchError
	if errors.As(err, &mismatch) {
		return nil, &issuerMismatchError{configured: k.issuer, published: mismatch.Discovered}
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
	// An ID token's alg must be one K1 advertises (OIDC Core §3.1.3.7);
	// without the list, RS256 (OIDC Discovery §3).
	algs := []string{oidc.RS256}
	if meta.Algs != nil {
		algs = slices.DeleteFunc(slices.Clone(meta.Algs), func(a string) bool { return !slices.Contains(signingAlgs, a) })
		if len(algs) == 0 {
			return nil, &discoveryError{problem: fmt.Sprintf("id_token_signing_alg_values_supported %q names no algorithm k1sso accepts (%s)",
				meta.Algs, strings.Join(signingAlgs, ", "))}
		}
	}
	if meta.JWKS == "" {
		return nil, &discoveryError{problem: "it has no jwks_uri"}
	}
	// Our own key set, not go-oidc's RemoteKeySet: that one refetches on
	// every unknown kid without a rate limit.
	p := &k1Provider{
		provider:   prov,
		keys:       newKeySet(meta.JWKS, k.http, algs),
		issuer:     k.issuer,
		clientID:   k.clientID,
		endSession: meta.EndSession,
		algs:       algs,
		issParam:   meta.IssParam,
		offline:    slices.Contains(meta.Scopes, "offline_access"),
	}
	return p, nil
}
