package caddymodule_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

// grantLog serves k1dev and notes when each refresh grant reached it.
type grantLog struct {
	h  http.Handler
	mu sync.Mutex
	at []time.Time
}

func (g *grantLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/oauth/token" {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		r.Body.Close()
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		if v, _ := url.ParseQuery(string(b)); v.Get("grant_type") == "refresh_token" {
			g.mu.Lock()
			g.at = append(g.at, time.Now())
			g.mu.Unlock()
		}
	}
	g.h.ServeHTTP(w, r)
}

func (g *grantLog) grants() []time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]time.Time(nil), g.at...)
}

// TestRecheckOncePerIntervalAcrossInstances: one session used at two
// instances sharing a store is rechecked with K1 once per recheck_interval
// in total, not once per instance, and still in every interval.
func TestRecheckOncePerIntervalAcrossInstances(t *testing.T) {
	// The shortest interval allowed, where a claim that lapses early or a
	// wait on the store's lock shows most.
	const interval = time.Second
	for _, tc := range []struct {
		name    string
		storage func(t *testing.T) (option, folder string)
	}{
		{"redis", func(t *testing.T) (string, string) { return "store redis " + testenv.StartRedis(t).URL, "" }},
		{"caddy", func(t *testing.T) (string, string) { return "store caddy", t.TempDir() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k1 := &grantLog{}
			inst := startK1Behind(t, func(srv http.Handler) http.Handler { k1.h = srv; return k1 })
			u := inst.URL

			store, folder := tc.storage(t)
			site := testenv.Site{K1: u, Upstream: testenv.NewUpstream(t).URL, Users: testenv.DemoUsers(t),
				Options: []string{store, "recheck_interval " + interval.String()}, Storage: folder}
			a := testenv.StartProcess(t, site)
			b := testenv.StartProcess(t, site)
			cookie := loginBobAt(t, inst, b.URL)
			if cookie == "" {
				t.Fatal("no session cookie after the login at B")
			}

			// The same cookie at A and B in turn, every 100ms, for six
			// intervals: both instances find the session due at the same
			// moments.
			start := time.Now()
			lost := ""
		requests:
			for i := 0; time.Since(start) < 6*interval && i < 200; i++ {
				for _, p := range []*testenv.Process{a, b} {
					if refused(t, p.URL, cookie) {
						lost = p.URL
						break requests
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			took := time.Since(start)

			at := k1.grants()
			t.Logf("%d refresh grants at K1 in %s of requests at two instances with recheck_interval %s", len(at), took.Round(time.Millisecond), interval)
			// The claim lasts most of an interval (the caddy store keeps
			// whole seconds): two grants closer than a quarter of it are
			// two instances asking K1 for the same interval (and the
			// second, with a refresh token the first one rotated, gets
			// invalid_grant and ends the session).
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap < interval/4 {
					t.Fatalf("refresh grants %d and %d of one session came %s apart with recheck_interval %s: more than one per interval across the instances", i, i+1, gap.Round(time.Millisecond), interval)
				}
			}
			if lost != "" {
				t.Fatalf("%s refused an enabled user's session at a recheck", lost)
			}
			for i := 1; i < len(at); i++ {
				if gap := at[i].Sub(at[i-1]); gap > interval+time.Second {
					t.Fatalf("refresh grants %d and %d came %s apart with recheck_interval %s: an interval without a recheck", i, i+1, gap.Round(time.Millisecond), interval)
				}
			}
			if min := int(took/interval) - 1; len(at) < min {
				t.Fatalf("%d refresh grants in %s with recheck_interval %s, want at least %d: the recheck does not run every interval", len(at), took, interval, min)
			}
			if max := int(took/(interval*9/10)) + 1; len(at) > max {
				t.Fatalf("%d refresh grants in %s with recheck_interval %s, want at most %d", len(at), took, interval, max)
			}
		})
	}
}
