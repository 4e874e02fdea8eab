package caddymodule_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/testenv"
)

func TestLifecycleAdapt(t *testing.T) {
	s := testenv.Site{K1: "http://127.0.0.1:1", Upstream: "http://127.0.0.1:2", Users: "/u.csv", Port: 1, Storage: "/s",
		Options: []string{"session_idle_timeout 30m", "expiry_notice 10m"}}
	cfg, err := testenv.AdaptCaddyfile(s.Caddyfile(t))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []struct {
							Routes []struct {
								Handle []map[string]any `json:"handle"`
							} `json:"routes"`
						} `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &v); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, srv := range v.Apps.HTTP.Servers {
		for _, rt := range srv.Routes {
			for _, sub := range rt.Handle {
				for _, r := range sub.Routes {
					for _, hd := range r.Handle {
						if hd["handler"] == "k1sso" {
							found = true
							if hd["session_idle_timeout"] != float64(30*time.Minute) || hd["expiry_notice"] != float64(10*time.Minute) {
								t.Errorf("adapted k1sso: idle %v notice %v", hd["session_idle_timeout"], hd["expiry_notice"])
							}
						}
					}
				}
			}
		}
	}
	if !found {
		t.Fatalf("no k1sso handler in %s", cfg)
	}
}

func TestIdleTimeoutThroughCaddy(t *testing.T) {
	caddymodule.SetLifecycleUnit(t, time.Second)
	w := newWorld(t, "enforce", "session_idle_timeout 3s")
	c, _ := w.loginAs(t, "bob", "/.k1sso/login?rd=/x")
	nr := testenv.NoRedirect(c.Jar)
	first := cookieOf(c, w.px.URL, "k1sso")
	// Used every 700 ms for 5 s, longer than the idle timeout: kept, and
	// the cookie is re-issued on the way.
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(700 * time.Millisecond) {
		if s := testenv.DecodeSeen(t, get(t, nr, w.px.URL+"/x")); s.Header.Get("X-BMS-User") != "bob" {
			t.Fatalf("a session in use was refused after %s", time.Since(start))
		}
	}
	if cookieOf(c, w.px.URL, "k1sso") == first {
		t.Fatal("the session cookie was never re-issued while in use")
	}
	// Unused for longer than the timeout: over.
	time.Sleep(3500 * time.Millisecond)
	resp := get(t, nr, w.px.URL+"/x")
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/.k1sso/login?rd=") {
		t.Fatalf("an idle session: %d %q, want the login", resp.StatusCode, resp.Header.Get("Location"))
	}
}
