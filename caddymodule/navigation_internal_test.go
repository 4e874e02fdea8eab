package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestIsNavigation(t *testing.T) {
	const chromeNav = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
	cases := []struct {
		name   string
		method string
		hdr    []string
		want   bool
	}{
		{"chromium navigation", "GET", []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", chromeNav}, true},
		{"iframe", "GET", []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "iframe", "Accept", chromeNav}, true},
		{"fetch default accept", "GET", []string{"Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty", "Accept", "*/*"}, false},
		{"fetch same-origin accepting html", "GET", []string{"Sec-Fetch-Mode", "same-origin", "Sec-Fetch-Dest", "empty", "Accept", "text/html"}, false},
		{"event source", "GET", []string{"Sec-Fetch-Mode", "cors", "Sec-Fetch-Dest", "empty", "Accept", "text/event-stream"}, false},
		{"image", "GET", []string{"Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "image", "Accept", "image/avif,image/webp,*/*"}, false},
		{"script", "GET", []string{"Sec-Fetch-Mode", "no-cors", "Sec-Fetch-Dest", "script", "Accept", "*/*"}, false},
		{"websocket", "GET", []string{"Sec-Fetch-Mode", "websocket", "Sec-Fetch-Dest", "websocket"}, false},
		{"navigate into an embed", "GET", []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "embed"}, false},
		{"form post", "POST", []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", chromeNav}, false},
		{"old browser page", "GET", []string{"Accept", "text/html,*/*;q=0.8"}, true},
		{"old browser head", "HEAD", []string{"Accept", "application/xhtml+xml"}, true},
		{"old xhr", "GET", []string{"Accept", "text/html", "X-Requested-With", "XMLHttpRequest"}, false},
		{"html refused", "GET", []string{"Accept", "text/html;q=0, */*"}, false},
		{"html refused 0.000", "GET", []string{"Accept", "text/html; q=0.000"}, false},
		{"html low but allowed", "GET", []string{"Accept", "text/html;q=0.1"}, true},
		{"no accept (curl)", "GET", nil, false},
		{"star only", "GET", []string{"Accept", "*/*"}, false},
		{"json", "GET", []string{"Accept", "application/json"}, false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "/x", nil)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			r.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		if got := isNavigation(r); got != c.want {
			t.Errorf("%s: isNavigation = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestUnauthorizedIsJSONChallenge(t *testing.T) {
	rec := httptest.NewRecorder()
	unauthorized(rec, "unauthorized", "/.k1sso/login")
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" ||
		rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Location") != "" {
		t.Fatalf("got %d %v", rec.Code, rec.Header())
	}
}
