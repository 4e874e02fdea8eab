package caddymodule

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names k1sso's spans to the tracer provider.
const tracerName = "github.com/k1sso/k1sso/caddymodule"

// Span attributes of a call to K1. Values are bounded: no URL, query,
// token or email ever becomes an attribute.
const (
	attrK1Endpoint = "k1sso.k1.endpoint" // discovery, token, jwks, userinfo, other
	attrK1Outcome  = "k1sso.k1.outcome"  // ok, refused (4xx), failed (other status), unreachable
)

// startK1Span starts a client span for one call to K1 when the request
// that causes it is traced (Caddy's tracing handler put a span in its
// context). It uses that span's tracer provider, so the call is a child of
// the request's span in whichever provider Caddy configured; untraced
// requests get no span and pay nothing.
func startK1Span(r *http.Request, endpoint string) (*http.Request, trace.Span) {
	parent := trace.SpanFromContext(r.Context())
	if !parent.SpanContext().IsValid() {
		return r, nil
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(r.Context(), "K1 "+endpoint,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String(attrK1Endpoint, endpoint),
			attribute.String("http.request.method", r.Method),
			attribute.String("server.address", r.URL.Hostname()),
		))
	return r.WithContext(ctx), span
}

// endK1Span records the outcome of a call to K1 and ends its span. The
// transport error itself is not recorded: it may quote the URL.
func endK1Span(span trace.Span, resp *http.Response, err error) {
	if span == nil {
		return
	}
	outcome := "ok"
	switch {
	case err != nil:
		outcome = "unreachable"
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		outcome = "refused"
	case resp.StatusCode >= 300:
		outcome = "failed"
	}
	if resp != nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	span.SetAttributes(attribute.String(attrK1Outcome, outcome))
	if outcome != "ok" {
		span.SetStatus(codes.Error, outcome)
	}
	span.End()
}

// withSpanOf returns ctx carrying the span of from, so a call made under
// ctx (which keeps its own values and deadline) is traced as part of the
// request from.
func withSpanOf(ctx, from context.Context) context.Context {
	if s := trace.SpanFromContext(from); s.SpanContext().IsValid() {
		return trace.ContextWithSpan(ctx, s)
	}
	return ctx
}
