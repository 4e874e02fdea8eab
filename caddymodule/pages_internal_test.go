package caddymodule

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// TestK1DownRetryLinkIsLocal: the "Try again" link of the K1-unreachable
// page is the request's address only when that is a clean local path.
func TestK1DownRetryLinkIsLocal(t *testing.T) {
	h := &Handler{cfg: &config{landingPage: "/home", issuer: "https://k1.example"}, logger: zap.NewNop()}
	for _, tt := range []struct{ target, want string }{
		{"/.k1sso/login?rd=%2Fx", `href="/.k1sso/login?rd=%2Fx"`},
		{"//evil.example/x", `href="/home"`},
		{"/\\evil.example/x", `href="/home"`},
		{"/..//evil.example/x", `href="/evil.example/x"`},
	} {
		w := httptest.NewRecorder()
		h.k1Down(w, httptest.NewRequest("GET", tt.target, nil), errors.New("dial tcp: connection refused"))
		if b := w.Body.String(); w.Code != 503 || !strings.Contains(b, tt.want) || strings.Contains(b, `href="//`) {
			t.Errorf("%s: %d, want a 503 page with %s: %s", tt.target, w.Code, tt.want, b)
		}
	}
}
