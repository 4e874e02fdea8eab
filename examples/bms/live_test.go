package bms

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestLiveEndpoints(t *testing.T) {
	ts, c, _ := newClient(t)
	for _, p := range []string{"/api/tickets/count", "/api/tickets/feed"} {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+p, nil)
		if resp, _ := do(t, c, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without login: %d, want 401", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/tickets/count", nil)
	req.Header.Set("X-BMS-User", "bob")
	req.Header.Set("X-BMS-Tenant", "acme")
	if resp, body := do(t, c, req); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"open":4`) {
		t.Errorf("count: %d %s", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/tickets/feed", nil)
	req.Header.Set("X-BMS-User", "bob")
	req.Header.Set("X-BMS-Tenant", "acme")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if resp.Header.Get("Content-Type") != "text/event-stream" || err != nil || !strings.HasPrefix(line, `data: {"id":"T20240308.0001"`) {
		t.Errorf("feed: %s %q %v", resp.Header.Get("Content-Type"), line, err)
	}
}
