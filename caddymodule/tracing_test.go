package caddymodule_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/internal/testenv"
)

// memSpans receives the spans of Caddy's tracing handler: Caddy builds its
// exporter with autoexport, which OTEL_TRACES_EXPORTER=k1sso-test points
// here.
var memSpans = tracetest.NewInMemoryExporter()

func init() {
	autoexport.RegisterSpanExporter("k1sso-test", func(context.Context) (sdktrace.SpanExporter, error) {
		return keepSpans{memSpans}, nil
	})
}

// keepSpans keeps the spans when Caddy shuts its provider down (the
// in-memory exporter forgets them on Shutdown).
type keepSpans struct{ *tracetest.InMemoryExporter }

func (keepSpans) Shutdown(context.Context) error { return nil }

// TestTracingK1Calls signs in through a route with Caddy's tracing
// handler: the calls to K1 made for the callback (token exchange, JWKS,
// userinfo when needed) are child spans of the callback request's span,
// with the endpoint and outcome, and no span carries a token, a code or an
// email.
func TestTracingK1Calls(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "k1sso-test")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	memSpans.Reset()
	k1 := k1devtest.Start(t, nil)
	up := testenv.NewUpstream(t)
	s := testenv.Site{K1: k1.URL, Upstream: up.URL, Users: testenv.DemoUsers(t), Extra: "\ttracing {\n\t\tspan bms\n\t}"}
	px := testenv.StartCaddy(t, s)

	c := k1devtest.NewClient()
	resp, err := k1.Login(c, px.URL+"/.k1sso/login?rd=/x", "bob", "Acme MSP", "bob-pass")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || cookieOf(c, px.URL, "k1sso") == "" {
		t.Fatalf("traced login: %d", resp.StatusCode)
	}

	var spans tracetest.SpanStubs
	find := func(name string) *tracetest.SpanStub {
		for i := range spans {
			if spans[i].Name == name {
				return &spans[i]
			}
		}
		return nil
	}
	// A child ends before its parent, so the request span may be exported
	// in a later batch than the K1 spans: wait for the parents too.
	exported := func(name string) bool {
		k := find(name)
		if k == nil {
			return false
		}
		for i := range spans {
			if spans[i].SpanContext.SpanID() == k.Parent.SpanID() {
				return true
			}
		}
		return false
	}
	for i := 0; i < 100; i++ {
		spans = memSpans.GetSpans()
		if exported("K1 token") && exported("K1 jwks") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	attr := func(s *tracetest.SpanStub, key string) string {
		for _, kv := range s.Attributes {
			if string(kv.Key) == key {
				return kv.Value.Emit()
			}
		}
		return ""
	}
	byID := map[string]*tracetest.SpanStub{}
	for i := range spans {
		byID[spans[i].SpanContext.SpanID().String()] = &spans[i]
	}
	for _, name := range []string{"K1 token", "K1 jwks"} {
		k := find(name)
		if k == nil {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("no %q span; spans: %v", name, names)
		}
		parent := byID[k.Parent.SpanID().String()]
		if parent == nil || parent.Name != "bms" || !strings.HasPrefix(attr(parent, "url.path"), "/.k1sso/callback") {
			t.Fatalf("%s is not a child of the callback's request span: parent %+v", name, parent)
		}
		if k.SpanContext.TraceID() != parent.SpanContext.TraceID() {
			t.Fatalf("%s is in another trace", name)
		}
		if attr(k, "k1sso.k1.endpoint") != strings.TrimPrefix(name, "K1 ") || attr(k, "k1sso.k1.outcome") != "ok" {
			t.Fatalf("%s attributes: %v", name, k.Attributes)
		}
		t.Logf("%s: child of %s %s, %v", name, parent.Name, attr(parent, "url.path"), k.Attributes)
	}
	// Nothing secret or personal in k1sso's spans.
	for _, s := range spans {
		if !strings.HasPrefix(s.Name, "K1 ") {
			continue
		}
		for _, kv := range s.Attributes {
			v := kv.Value.Emit()
			if strings.Contains(v, "@") || strings.Contains(v, "?") || strings.Contains(v, "code") || len(v) > 64 {
				t.Fatalf("span %s carries %s=%q", s.Name, kv.Key, v)
			}
		}
	}
}
