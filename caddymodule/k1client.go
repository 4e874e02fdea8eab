package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/k1sso/k1sso/oidcrp"
)

// The client of KaseyaOne is an OpenID relying party (package oidcrp);
// what is K1's about it (metrics, traces, timeouts, log lines and pages)
// is added here.
type (
	k1Client   = oidcrp.Client
	k1Provider = oidcrp.Provider
)

// k1Timeout bounds every call to K1 (discovery, JWKS, token exchange,
// userinfo): a slow K1 gets a 503 page, not a hanging browser. A tunable so
// tests can shorten it.
var k1Timeout = newTunable(10 * time.Second)

// The timing of the K1 client, read when the pooled state is built; tests
// shorten them. jwksMinRefetch is oidcrp.Config.MinRefetch, the backoff
// its MinBackoff and MaxBackoff.
var (
	jwksMinRefetch = newTunable(oidcrp.DefaultMinRefetch)
	minBackoff     = newTunable(oidcrp.DefaultMinBackoff)
	maxBackoff     = newTunable(oidcrp.DefaultMaxBackoff)
)

// newK1Client returns the client of cfg's issuer. ctx must outlive the
// requests (go-oidc keeps it for every later JWKS fetch), so it must not
// be a caddy.Context, which is cancelled on reload.
func newK1Client(ctx context.Context, cfg *config, logger *zap.Logger, now func() time.Time) *k1Client {
	return oidcrp.New(ctx, oidcrp.Config{
		Issuer:      cfg.issuer,
		ClientID:    cfg.clientID,
		Transport:   k1Transport{}, // k1transport.go
		Timeout:     k1Timeout.get(),
		MinBackoff:  minBackoff.get(),
		MaxBackoff:  maxBackoff.get(),
		MinRefetch:  jwksMinRefetch.get(),
		Now:         now,
		CallContext: withSpanOf, // tracing.go: discovery is traced as part of the request that needed it
		OnDiscovery: func(err error, retryIn time.Duration) { logDiscovery(logger, cfg.issuer, err, retryIn) },
	})
}

// logDiscovery logs the outcome of one discovery attempt.
func logDiscovery(logger *zap.Logger, issuer string, err error, retryIn time.Duration) {
	if err == nil {
		logger.Info("KaseyaOne discovery loaded", zap.String("issuer", issuer))
		return
	}
	if reason, _, ok := misconfigured(err); ok {
		fields := []zap.Field{zap.String("issuer", issuer), zap.String("discovery_url", oidcrp.DiscoveryURL(issuer)),
			zap.String("reason", reason), zap.Duration("retry_in", retryIn), zap.Error(err)}
		var mismatch *oidcrp.IssuerMismatchError
		if errors.As(err, &mismatch) {
			fields = append(fields, zap.String("published_issuer", mismatch.Published))
		}
		logger.Error("KaseyaOne discovery cannot be used: check the issuer option and KaseyaOne's discovery document", fields...)
		return
	}
	logger.Warn("KaseyaOne discovery failed; will retry", zap.String("issuer", issuer), zap.Duration("retry_in", retryIn), zap.Error(err))
}

// misconfigured tells a discovery that succeeded but cannot be used (a
// mistake in the configuration or in K1's discovery document, not an
// outage) from an outage. reason is for logs and metrics, detail for the
// administrator on the login page.
func misconfigured(err error) (reason, detail string, ok bool) {
	var mismatch *oidcrp.IssuerMismatchError
	var invalid *oidcrp.DiscoveryError
	switch {
	case errors.As(err, &mismatch):
		return "issuer_mismatch", fmt.Sprintf("This proxy is configured with the issuer %q, but KaseyaOne's discovery document publishes the issuer %q. The two must be exactly the same.",
			mismatch.Configured, mismatch.Published), true
	case errors.As(err, &invalid):
		return "discovery_invalid", "KaseyaOne's discovery document cannot be used: " + invalid.Problem + ".", true
	}
	return "", "", false
}
