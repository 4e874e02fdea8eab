package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/k1sso/k1sso/internal/testenv"
)

// expireSession drops the proxy's session cookie from the browser, as the
// browser does when the cookie's lifetime (the session's) is over. The K1
// session lives on.
func (w *world) expireSession() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: w.sessionCookieName(), URL: w.proxy + "/"})
		return err
	})
}

// createdTickets is the number of rows of BMS's created tickets.
func createdTickets(want int) chromedp.Action[chromedp.Void] {
	return eval(`String(document.querySelectorAll("#created-tickets tbody tr").length)`, func(got string) error {
		if got != fmt.Sprint(want) {
			return fmt.Errorf("BMS lists %s created tickets, want %d", got, want)
		}
		return nil
	})
}

// TestFormAfterSessionExpired: a ticket typed while the session ran out
// is not lost: the post without a session is kept, the login at K1 runs
// (silently: the K1 session lives), the "Sending your form again…" page
// posts it, and BMS creates the ticket once, with every field.
func TestFormAfterSessionExpired(t *testing.T) {
	bothSchemes(t, []string{"enforce"}, func(w *world) {
		ticketAfterSessionEnd(w, w.expireSession())
	})
}

// TestFormAfterSessionExpiredOptional: the same in optional SSO, where a
// post without a session is BMS's: the session ends by its idle timeout
// (3 s with k1sso_shortunits), so the browser still sends its cookie, and
// that form is kept and sent again as in enforce mode.
func TestFormAfterSessionExpiredOptional(t *testing.T) {
	bin := testenv.CaddyBinaryTags(t, "k1sso_shortunits")
	for _, https := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[https], func(t *testing.T) {
			t.Parallel()
			w := newWorldBin(t, https, bin, "session_idle_timeout 3s")
			ticketAfterSessionEnd(w, chromedp.Sleep(4500*time.Millisecond))
		})
	}
}

// ticketAfterSessionEnd types a ticket, lets end end the session, submits
// it and checks BMS created it once, after the K1 login, with every field.
func ticketAfterSessionEnd(w *world, end chromedp.Action[chromedp.Void]) {
	w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
	w.step("dashboard", w.dashboardOf("bob", "acme", "bob@acme.example")...)
	w.step("new-ticket-form", open(w.proxy+"/tickets/new"), visible("#new-ticket"),
		typeInto("#ticket-title", "Printer on fire & smoking"),
		typeInto("#ticket-account", "Acme <Main> Office"),
		chromedp.SetValue(chromedp.CSS("#ticket-priority"), "High"),
		chromedp.SendKeys(chromedp.CSS("#ticket-description"), "Line one\nLine two: 100% \"urgent\""),
	)
	w.step("session-expires", end, expectStatus("/.k1sso/whoami", 401))
	w.step("submit-after-expiry", click("#ticket-submit"), visible("#created-tickets"),
		expectLocation(w.proxy, "/tickets"),
		createdTickets(1),
		expectText("#created-tickets .title", "Printer on fire & smoking"),
		expectText("#created-tickets .account", "Acme <Main> Office"),
		expectText("#created-tickets .priority", "High"),
		eval(`document.querySelector("#created-tickets .description").textContent`, func(got string) error {
			if want := "Line one\nLine two: 100% \"urgent\""; got != want && got != "Line one\r\nLine two: 100% \"urgent\"" {
				return fmt.Errorf("description %q, want %q", got, want)
			}
			return nil
		}),
		expectText("#created-tickets .by", "bob"),
		w.expectSessionCookie(),
	)
	// Never twice: the replay page has nothing left, and BMS still
	// lists the ticket once.
	w.step("no-second-replay", open(w.proxy+"/.k1sso/replay"), visible("#k1sso-title"), expectText("#k1sso-title", "No form to send"))
	w.step("ticket-once", open(w.proxy+"/tickets"), visible("#created-tickets"), createdTickets(1))
}
