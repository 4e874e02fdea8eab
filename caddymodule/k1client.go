package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
)

// k1Timeout bounds every call to K1 (discovery, JWKS, token exchange,
// userinfo): a slow K1 gets a 503 page, not a hanging browser. A variable so
// tests can shorten it.
var k1Timeout = 10 * time.Second

// Discovery backoff: the first retry after a failure waits minBackoff, each
// next one twice as long, up to maxBackoff. Variables so tests can shorten
// them.
var (
	minBackoff = newTunable(time.Second)
	maxBackoff = newTunable(time.Minute)
)

// errK1Unavailable means K1's discovery could not be fetched (yet).
var errK1Unavailable = errors.New("KaseyaOne is unreachable")

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
	nextTry  time.Time
	backoff  time.Duration
	inflight chan struct{}
}

// k1Provider is what discovery yields.
type k1Provider struct {
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier // with the default clock skew
	keys       *keySet
	issuer     string
	clientID   string
	endSession string
	algs       []string
}

// verifierWithSkew returns a verifier whose exp check allows skew: go-oidc
// has no leeway for exp, so its clock is set back by skew.
func (p *k1Provider) verifierWithSkew(skew time.Duration) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(p.issuer, p.keys, &oidc.Config{
		ClientID:             p.clientID,
		SupportedSigningAlgs: p.algs,
		Now:                  func() time.Time { return time.Now().Add(-skew) },
	})
}

func newK1Client(ctx context.Context, cfg *config, logger *zap.Logger) *k1Client {
	hc := &http.Client{Timeout: k1Timeout, Transport: k1Transport{}} // k1Transport: metrics.go
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
		p := k.p
		k.mu.Unlock()
		if p == nil {
			return nil, errK1Unavailable
		}
		return p, nil
	}
	if time.Now().Before(k.nextTry) {
		k.mu.Unlock()
		return nil, errK1Unavailable
	}
	ch := make(chan struct{})
	k.inflight = ch
	k.mu.Unlock()

	p, err := k.discover(ctx)

	k.mu.Lock()
	k.inflight = nil
	if err != nil {
		k.backoff = min(max(k.backoff*2, minBackoff.get()), maxBackoff.get())
		k.nextTry = time.Now().Add(k.backoff)
		k.logger.Warn("KaseyaOne discovery failed; will retry",
			zap.String("issuer", k.issuer), zap.Duration("retry_in", k.backoff), zap.Error(err))
	} else {
		k.p = p
		k.backoff = 0
		k.logger.Info("KaseyaOne discovery loaded", zap.String("issuer", k.issuer))
	}
	k.mu.Unlock()
	close(ch)
	if err != nil {
		return nil, errK1Unavailable
	}
	return p, nil
}

// discover fetches discovery under the client's own context (which must
// outlive the request), traced as part of the request that needed it.
func (k *k1Client) discover(caller context.Context) (*k1Provider, error) {
	ctx, cancel := context.WithTimeout(withSpanOf(k.ctx, caller), k1Timeout)
	defer cancel()
	prov, err := oidc.NewProvider(ctx, k.issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKS       string   `json:"jwks_uri"`
		EndSession string   `json:"end_session_endpoint"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := prov.Claims(&meta); err != nil {
		return nil, err
	}
	algs := make([]string, 0, len(meta.Algs))
	for _, a := range meta.Algs {
		if a != "none" && a != "" && a[0] != 'H' { // never none, never HMAC with a public key
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	if meta.JWKS == "" {
		return nil, errors.New("discovery has no jwks_uri")
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
	}
	p.verifier = p.verifierWithSkew(defaultClockSkew)
	return p, nil
}
