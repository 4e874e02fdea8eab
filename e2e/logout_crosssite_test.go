package e2e

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestCrossSiteLogoutKeepsSession: a link on another site to BMS's logout
// (Chromium sends Sec-Fetch-Site: cross-site) gets the sign-out
// confirmation and the session stays; its button then signs out.
func TestCrossSiteLogoutKeepsSession(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("dashboard", w.dashboardOf("bob", "acme", "bob@acme.example")...)

		// Another site: 127.0.0.1 is another site than the proxy's localhost.
		other, _ := serve(w.t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(rw, `<!doctype html><title>other</title><a id="bait" href="%s/logout">prize</a>`, w.proxy)
		}))
		w.step("other-site", open(other+"/"), visible("#bait"))
		w.step("cross-site-logout", clickAndLoad("#bait"), visible(`form[action^="/.k1sso/logout"] #k1sso-confirm`),
			expectLocation(w.proxy, "/logout"))
		w.step("still-signed-in", actions([]chromedp.Action[chromedp.Void]{open(w.proxy + "/dashboard")},
			w.dashboardOf("bob", "acme", "bob@acme.example"))...)

		w.step("open-again", open(other+"/"), visible("#bait"), clickAndLoad("#bait"), visible("#k1sso-confirm"))
		w.step("confirm", click("#k1sso-confirm"), visible(bmsLoginForm), expectLocation(w.proxy, "/login"),
			expectStatus("/.k1sso/whoami", 401))
	})
}
