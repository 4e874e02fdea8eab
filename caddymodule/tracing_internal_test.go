package caddymodule

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
)

// TestTracingDiscoveryAndUserinfo covers the calls a traced sign-in makes
// only now and then: discovery (when the request is the first to need
// it) and userinfo (when the ID token has no email), against a real
// k1dev. Both are children of the request's span; a refused userinfo says
// so in its outcome.
func TestTracingDiscoveryAndUserinfo(t *testing.T) {
	k1 := k1devtest.Start(t, nil)
	mem := tracetest.NewInMemoryExporter()
	tp := trace.NewTracerProvider(trace.WithSyncer(mem))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")

	kc := newK1Client(context.Background(), &config{issuer: k1.URL, clientID: "bms-proxy", clientSecret: "x"}, zap.NewNop(), clockNow)
	p, err := kc.Provider(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uctx := context.WithValue(ctx, oauth2.HTTPClient, kc.HTTPClient())
	if _, err := p.UserInfo(uctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "not-a-token"})); err == nil {
		t.Fatal("userinfo accepted a made-up access token")
	}
	req.End()

	want := map[string]string{"K1 discovery": "ok", "K1 userinfo": "refused"}
	for _, s := range mem.GetSpans() {
		outcome, ok := want[s.Name]
		if !ok {
			continue
		}
		if s.Parent.SpanID() != req.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the request span", s.Name)
		}
		got := map[string]string{}
		for _, kv := range s.Attributes {
			got[string(kv.Key)] = kv.Value.Emit()
		}
		if got[attrK1Outcome] != outcome || got[attrK1Endpoint] == "" {
			t.Errorf("%s: attributes %v, want outcome %s", s.Name, got, outcome)
		}
		t.Logf("%s: %v", s.Name, got)
		delete(want, s.Name)
	}
	if len(want) > 0 {
		t.Fatalf("no spans for %v", want)
	}
}
