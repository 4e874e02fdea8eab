package caddymodule

import (
	"net/http"
	"path"
	"strings"
	"time"
)

// k1Transport times every request of the K1 client (discovery, token
// exchange, JWKS, userinfo) for k1_request_duration_seconds, counts JWKS
// fetches and traces each call as a child of a traced request (oidcrp
// bounds every answer's body on top of it). It sees every call wherever it
// is made (go-oidc, oauth2, the key set), which is why it sits in the
// client rather than at each caller.
type k1Transport struct {
	base http.RoundTripper // nil: http.DefaultTransport
}

// RoundTrip implements http.RoundTripper.
func (t k1Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	endpoint := k1Endpoint(r.URL.Path)
	r, span := startK1Span(r, endpoint) // tracing.go
	start := time.Now()
	resp, err := base.RoundTrip(r)
	k1ssoMetrics.k1Request(endpoint, time.Since(start))
	endK1Span(span, resp, err)
	return resp, err
}

// k1Endpoint names the K1 endpoint of a request path for the endpoint
// label, from the path alone (the label must stay bounded): discovery,
// token, jwks, userinfo or other.
func k1Endpoint(p string) string {
	if strings.HasSuffix(p, "/.well-known/openid-configuration") {
		return "discovery"
	}
	switch last := strings.ToLower(path.Base(p)); {
	case last == "token":
		return "token"
	case last == "userinfo":
		return "userinfo"
	case last == "keys" || last == "certs" || strings.Contains(last, "jwk"):
		return "jwks"
	}
	return "other"
}
