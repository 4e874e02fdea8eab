package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"testing"

	"github.com/chromedp/chromedp"

	"github.com/k1sso/k1sso/internal/testenv"
)

// evalInt evaluates a JavaScript expression yielding a number as a string.
func evalInt(expr string, dst *int64) chromedp.Action[chromedp.Void] {
	return eval(expr, func(got string) error {
		v, err := strconv.ParseInt(got, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %q is not a number", expr, got)
		}
		*dst = v
		return nil
	})
}

// fetchStatus fetches path from the page and returns its status (0: a
// redirect, which fetch() must never get from the proxy).
const fetchStatusJS = `fetch(%q, {redirect: "manual"}).then(r => String(r.status))`

// TestIdleTimeout: a session used more often than its idle timeout is kept
// longer than the timeout; unused for the timeout, it is over (a fetch()
// gets 401). Caddy is built with k1sso_shortunits, so the timeout is 3s and
// the cookie is re-issued every second.
func TestIdleTimeout(t *testing.T) {
	bin := testenv.CaddyBinaryTags(t, "k1sso_shortunits")
	for _, https := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[https], func(t *testing.T) {
			t.Parallel()
			w := newWorldBin(t, https, bin, "session_idle_timeout 3s")
			w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
			w.step("tickets", open(w.proxy+"/tickets"), visible("#user-name"))
			start := time.Now()
			for i := 0; time.Since(start) < 6*time.Second; i++ {
				w.step(fmt.Sprintf("in-use-%d", i), eval(fmt.Sprintf(fetchStatusJS, "/api/tickets/count"), func(got string) error {
					if got != "200" {
						return fmt.Errorf("a session in use for %s (idle timeout 3s) got %s", time.Since(start).Round(time.Millisecond), got)
					}
					return nil
				}))
				time.Sleep(700 * time.Millisecond)
			}
			time.Sleep(4 * time.Second) // unused for longer than the idle timeout
			w.step("idle", expectStatus("/api/tickets/count", 401), expectStatus("/.k1sso/whoami", 401))
		})
	}
}

// TestStreamAndFetchAfterLogout: the dashboard's live feed (an event
// stream at instance A) closes within 1 s of a logout at instance B (same
// redis store); afterwards the page's fetch() gets 401 and the page says
// so.
func TestStreamAndFetchAfterLogout(t *testing.T) {
	rd := testenv.StartRedis(t)
	bothSchemes(t, []string{"store redis " + rd.URL}, func(w *world) {
		t := w.t
		port := testenv.FreePort(t)
		testenv.RunCaddyfileBin(t, w.bin, w.siteAt(port), port)
		scheme := "http"
		if w.https {
			scheme = "https"
		}
		other := fmt.Sprintf("%s://%s:%d", scheme, proxyHost, port)

		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("feed-live", visible(`#feed-status[data-state="open"]`), visible("#feed li:nth-child(2)"),
			visible(`#count-status[data-status="200"]`))

		ctx, cancel := context.WithTimeout(w.ctx, 5*time.Second)
		cookies, err := w.proxyCookies(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var session string
		for _, c := range cookies {
			if c.Name == w.sessionCookieName() {
				session = c.Value
			}
		}
		if session == "" {
			t.Fatal("no session cookie in the browser")
		}
		// BMS's logout at B, as another tab of the same browser would send it.
		req, _ := http.NewRequest(http.MethodGet, other+"/logout", nil)
		req.Header.Set("Accept", "text/html")
		req.AddCookie(&http.Cookie{Name: w.sessionCookieName(), Value: session})
		hc := testenv.NoRedirect(nil)
		if w.https {
			pem, err := os.ReadFile(w.caFile)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		}
		loggedOut := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || !strings.Contains(resp.Header.Get("Location"), "end_session") {
			t.Fatalf("logout at B: %d %q, want the way to K1's end_session", resp.StatusCode, resp.Header.Get("Location"))
		}

		var dropped int64
		w.step("feed-closed", visible("#feed-status[data-dropped-at]"),
			evalInt(`document.getElementById("feed-status").getAttribute("data-dropped-at")`, &dropped))
		took := time.Duration(dropped-loggedOut.UnixMilli()) * time.Millisecond
		t.Logf("the event stream at A closed %s after the logout at B", took)
		if took > time.Second {
			t.Fatalf("the event stream at A closed %s after the logout at B; want within 1s", took)
		}
		w.step("feed-stays-closed", visible(`#feed-status[data-state="closed"]`))
		w.step("fetch-401", click("#count-refresh"), visible(`#count-status[data-status="401"]`),
			visibleText("Your session has ended (401)"), expectStatus("/api/tickets/count", 401))
	})
}

// TestExpiryNotice: in the last minute of a one-minute session the page
// says when the session ends; its link renews the session through K1
// (silently, K1's session lives) and comes back to the same page.
func TestExpiryNotice(t *testing.T) {
	bothSchemes(t, []string{"session_lifetime 1m", "expiry_notice 1m"}, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		var before, after int64
		w.step("notice", open(w.proxy+"/tickets?view=open"), visible("#k1sso-expiry"), visibleText("Your KaseyaOne session ends at"),
			evalInt(`document.getElementById("k1sso-expiry").getAttribute("data-ends")`, &before))
		time.Sleep(1100 * time.Millisecond) // a renewed session ends a second later at least
		w.step("renew", clickAndLoad("#k1sso-renew"), visible("#user-name"), expectLocation(w.proxy, "/tickets"),
			eval(`location.search`, func(got string) error {
				if got != "?view=open" {
					return fmt.Errorf("renewing came back to %q, want the same page", got)
				}
				return nil
			}),
			visible("#k1sso-expiry"),
			evalInt(`document.getElementById("k1sso-expiry").getAttribute("data-ends")`, &after))
		if after <= before {
			w.t.Fatalf("after renewing the session ends at %d, before at %d", after, before)
		}
	})
}
