package caddymodule

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/oidcrp"
)

// TestDiscoveryIssuerMismatchLogged: a discovery document that names
// another issuer is logged as a configuration error with both issuers, and
// get returns the typed error (the login page names both too).
func TestDiscoveryIssuerMismatchLogged(t *testing.T) {
	op := hostileop.Start(t)
	op.SetIssuer(op.URL + "/")
	core, logs := observer.New(zapcore.InfoLevel)
	k := newK1Client(context.Background(), &config{issuer: op.URL, clientID: hostileop.ClientID}, zap.New(core), clockNow)
	_, err := k.Provider(context.Background())
	var mismatch *oidcrp.IssuerMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("get: %v, want an issuer mismatch", err)
	}
	// In the backoff the same error, not "unreachable".
	if _, err := k.Provider(context.Background()); !errors.As(err, &mismatch) {
		t.Fatalf("second get: %v, want an issuer mismatch", err)
	}
	entries := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(entries) != 1 {
		t.Fatalf("%d error log entries, want 1: %v", len(entries), logs.All())
	}
	f := entries[0].ContextMap()
	if f["issuer"] != op.URL || f["published_issuer"] != op.URL+"/" {
		t.Errorf("log fields %v, want issuer %q and published_issuer %q", f, op.URL, op.URL+"/")
	}
}
