package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// switchFor is the integration slider of tenant on /.k1sso/admin (a
// checkbox with role "switch" in the tenant's row).
func switchFor(tenant string) string {
	return fmt.Sprintf(`[data-tenant=%q] [role="switch"]`, tenant)
}

// stateOf is the tenant's row on /.k1sso/admin once its integration shows
// as on or off.
func stateOf(tenant, state string) string {
	return fmt.Sprintf(`[data-tenant=%q][data-enabled=%q]`, tenant, state)
}

// toggle moves the tenant's slider and saves: the form posts, and the page
// it leads to (K1's sign-in, or back here after a brief round trip through
// K1) has loaded.
func toggle(tenant string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		click(switchFor(tenant)),
		clickAndLoad(fmt.Sprintf(`[data-tenant=%q] button[type="submit"]`, tenant)),
	}
}

// launcherNextToName checks the launcher icon sits beside #user-name: on
// the same line, at most 150 px away.
func launcherNextToName() chromedp.Action[chromedp.Void] {
	js := `(() => {
		const i = document.querySelector("` + launcherIcon + `"), n = document.querySelector("#user-name");
		if (!i || !n) return "missing";
		const a = i.getBoundingClientRect(), b = n.getBoundingClientRect();
		const dy = Math.abs((a.top + a.bottom) / 2 - (b.top + b.bottom) / 2);
		const dx = Math.max(0, a.left - b.right, b.left - a.right);
		return (dy <= 20 && dx <= 150) ? "ok" : "icon at " + JSON.stringify(a) + ", name at " + JSON.stringify(b);
	})()`
	return eval(js, func(got string) error {
		if got != "ok" {
			return fmt.Errorf("launcher icon not next to the user name: %s", got)
		}
		return nil
	})
}

// openAdminSwitch goes from the BMS dashboard to /.k1sso/admin through
// BMS's Admin > Integrations > KaseyaOne page.
func (w *world) openAdminSwitch(tenant string) {
	w.t.Helper()
	w.step("bms-integrations", click(`#main-nav a[href="/admin/integrations"]`), visible("#k1sso-admin"))
	w.step("k1sso-admin", click("#k1sso-admin"), visible(switchFor(tenant)), expectLocation(w.proxy, "/.k1sso/admin"))
}

// TestEnable is flow 1: with the integration off, an admin (signed in
// through a launch from K1, which works while it is off) switches it on;
// K1 asks for credentials and code again (prompt=login) although its
// session is fresh, and the page says "Operation is completed
// successfully."; the login link goes live.
func TestEnable(t *testing.T) {
	bothSchemes(t, []string{"integration_default off"}, func(w *world) {
		w.step("login-link-disabled", open(w.proxy+"/login"), visible(bmsLoginForm), linkState("disabled"),
			expectStatus("/.k1sso/login?tenant=acme", 403))
		w.k1Direct("alice", "Acme MSP", "alice-pass")
		w.step("launch-acme", open(w.k1URL+"/modules/BMS"), click(`#tenants a.tenant[data-tenant="acme"]`), visible("#user-name"))
		w.step("dashboard", w.dashboardOf("alice", "acme", "alice@acme.example")...)
		w.openAdminSwitch("acme")
		w.step("slider-on", actions([]chromedp.Action[chromedp.Void]{visible(stateOf("acme", "off"))}, toggle("acme"),
			[]chromedp.Action[chromedp.Void]{
				visible(k1Form + ", " + stateOf("acme", "on")),
				eval(`location.origin`, func(got string) error {
					if got != w.k1URL {
						return fmt.Errorf("K1 did not ask for credentials again (prompt=login): the switch came straight back to %s", got)
					}
					return nil
				}),
			}, w.k1Credentials("alice", "Acme MSP", "alice-pass"))...)
		w.step("k1-code", actions(w.k1Code("alice"), []chromedp.Action[chromedp.Void]{
			visibleText("Operation is completed successfully."),
			expectLocation(w.proxy, "/.k1sso/admin"),
			visible(stateOf("acme", "on")),
		})...)
		w.step("login-link-live", open(w.proxy+"/login"), visible(bmsLoginForm), linkState("live"),
			expectStatus("/.k1sso/login?tenant=acme", 0))
	})
}

// TestLoginWithKaseyaOne is flow 2: BMS's login page → the injected link →
// K1's credentials and code → the BMS dashboard with identity headers and
// the launcher icon next to the user's name.
func TestLoginWithKaseyaOne(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("dashboard", w.dashboardOf("bob", "acme", "bob@acme.example")...)
		w.step("launcher-icon", visible(launcherIcon), launcherNextToName())
	})
}

// TestLauncher is flow 3: the launcher icon → /.k1sso/launcher → K1's app
// launcher.
func TestLauncher(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("launcher-icon", visible(launcherIcon), w.expectSessionCookie(),
			eval(`new URL(document.querySelector("`+launcherIcon+`").href).pathname`, func(got string) error {
				if got != "/.k1sso/launcher" {
					return fmt.Errorf("launcher icon leads to %q, want /.k1sso/launcher", got)
				}
				return nil
			}))
		w.step("k1-app-launcher", click(launcherIcon), visible("#app-launcher"),
			expectLocation(w.k1URL, "/launcher"), visible(`#app-launcher a.tenant[data-tenant="acme"]`))
	})
}

// TestDisable is flow 4: slider off → a brief K1 round trip → back; the
// login link shows disabled, SP-initiated login into the tenant is refused,
// and a launch from K1 still works.
func TestDisable(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("alice", "Acme MSP", "alice-pass", "acme")
		w.step("dashboard", w.dashboardOf("alice", "acme", "alice@acme.example")...)
		w.openAdminSwitch("acme")
		// Both of alice's tenants go off, so the login page (which serves
		// every tenant) has no live tenant left.
		for _, tenant := range []string{"acme", "acme-labs"} {
			w.step("slider-off-"+tenant, actions([]chromedp.Action[chromedp.Void]{visible(stateOf(tenant, "on"))}, toggle(tenant),
				[]chromedp.Action[chromedp.Void]{visible(stateOf(tenant, "off") + ", " + k1Form)})...)
			if w.onK1() {
				// The sign-in was not recent enough: K1 asks again.
				w.step("k1-credentials-"+tenant, w.k1Credentials("alice", "Acme MSP", "alice-pass")...)
				w.step("k1-code-"+tenant, actions(w.k1Code("alice"), []chromedp.Action[chromedp.Void]{visible(stateOf(tenant, "off"))})...)
			}
			w.step("back-on-admin-"+tenant, expectLocation(w.proxy, "/.k1sso/admin"))
		}
		w.step("login-link-disabled", open(w.proxy+"/login"), visible(bmsLoginForm), linkState("disabled"),
			expectStatus("/.k1sso/login?tenant=acme", 403))
		w.step("sp-login-refused", open(w.proxy+"/.k1sso/login?tenant=acme"), visible("#k1sso-title"),
			expectLocation(w.proxy, "/.k1sso/login"))
		w.step("k1-launch-still-works", open(w.k1URL+"/modules/BMS"), click(`#tenants a.tenant[data-tenant="acme"]`),
			visible("#user-name"))
		w.step("dashboard-after-launch", w.dashboardOf("alice", "acme", "alice@acme.example")...)
	})
}

// onK1 reports whether the tab shows K1's login form.
func (w *world) onK1() bool {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, stepTimeout)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.origin + " " + !!document.querySelector('`+k1Form+`')`))
	if err != nil {
		w.t.Fatalf("reading the page's address: %v", err)
	}
	return got == w.k1URL+" true"
}

// TestGlobalLogout is flow 5: BMS's logout after a K1 login ends the BMS
// session, the proxy session and the K1 session; the next K1 login asks for
// credentials and the code again.
func TestGlobalLogout(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("dashboard", w.dashboardOf("bob", "acme", "bob@acme.example")...)
		w.step("bms-logout", click("#logout"), visible(bmsLoginForm), expectLocation(w.proxy, "/login"),
			expectStatus("/.k1sso/whoami", 401), w.expectNoSessionCookie(),
			eval(`fetch("/api/whoami-headers").then(r => r.json()).then(j => j.headers["X-BMS-User"] || "")`, func(got string) error {
				if got != "" {
					return fmt.Errorf("after logout the upstream still receives X-BMS-User %q", got)
				}
				return nil
			}))
		w.step("k1-asks-again", click(loginLink), visible(k1Form+", #user-name"),
			eval(`location.origin`, func(got string) error {
				if got != w.k1URL {
					return fmt.Errorf("K1 did not ask for credentials again: the link led straight back to %s (the K1 session survived the logout)", got)
				}
				return nil
			}))
		w.step("k1-credentials-again", w.k1Credentials("bob", "Acme MSP", "bob-pass")...)
		w.step("k1-code-again", actions(w.k1Code("bob"), []chromedp.Action[chromedp.Void]{visible("#user-name")})...)
		w.step("dashboard-again", w.dashboardOf("bob", "acme", "bob@acme.example")...)
	})
}

// TestLogoutAtK1 is the other half of flow 5: a logout at K1 (its
// back- and front-channel logout) ends the proxy session, so BMS no longer
// receives the identity and shows its login page.
func TestLogoutAtK1(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("dashboard", w.dashboardOf("bob", "acme", "bob@acme.example")...)
		w.step("k1-home", open(w.k1URL+"/"), visible("#overview-card"), visible("#logout"))
		w.step("k1-logout", click("#logout"), visible("#login-again"), expectLocation(w.k1URL, "/logged-out"))
		w.step("bms-session-ended", open(w.proxy+"/dashboard"), visible(bmsLoginForm+", #identity-headers"),
			expectLocation(w.proxy, "/login"),
			expectStatus("/.k1sso/whoami", 401))
	})
}

// TestBackchannelLogout is the back-channel half of flow 5 on its own: K1
// ends bob's session without the browser (an admin, an expiry), so only
// its logout token reaches the proxy, and the proxy session ends. On https
// k1dev must trust the site's CA for that call (the -ca-file flag).
func TestBackchannelLogout(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.loginWithLink("bob", "Acme MSP", "bob-pass", "")
		w.step("dashboard", w.dashboardOf("bob", "acme", "bob@acme.example")...)
		if err := w.k1.EndSessions("bob"); err != nil {
			w.t.Fatalf("K1 ended bob's session, but its back-channel logout failed: %v", err)
		}
		w.step("bms-session-ended", open(w.proxy+"/dashboard"), visible(bmsLoginForm+", #identity-headers"),
			expectLocation(w.proxy, "/login"),
			expectStatus("/.k1sso/whoami", 401))
	})
}

// k1Direct logs in at K1 itself (its home page) and waits for the
// overview.
func (w *world) k1Direct(user, company, password string) {
	w.t.Helper()
	w.step("k1-credentials", actions([]chromedp.Action[chromedp.Void]{open(w.k1URL + "/")}, w.k1Credentials(user, company, password))...)
	w.step("k1-home", actions(w.k1Code(user), []chromedp.Action[chromedp.Void]{visible("#overview-card")})...)
}

// TestFromK1LandingPage is flow 6: K1's My Modules → BMS → a tenant → the
// BMS dashboard of that tenant.
func TestFromK1LandingPage(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.k1Direct("alice", "Acme MSP", "alice-pass")
		w.step("my-modules", click("#my-modules"), visible("#module-BMS"))
		w.step("bms-tenants", click("#module-BMS"), visible(`#tenants a.tenant[data-tenant="acme-labs"]`))
		w.step("launch-acme-labs", click(`#tenants a.tenant[data-tenant="acme-labs"]`), visible("#user-name"))
		w.step("dashboard", w.dashboardOf("alice.labs", "acme-labs", "alice@acme.example")...)
	})
}

// TestFromK1AppLauncher is flow 7: K1's app launcher → BMS tenant → the
// BMS dashboard.
func TestFromK1AppLauncher(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.k1Direct("alice", "Acme MSP", "alice-pass")
		w.step("app-launcher", click("#k1-launcher"), visible(`#app-launcher a.tenant[data-module="BMS"][data-tenant="acme"]`))
		w.step("launch-acme", click(`#app-launcher a.tenant[data-module="BMS"][data-tenant="acme"]`), visible("#user-name"))
		w.step("dashboard", w.dashboardOf("alice", "acme", "alice@acme.example")...)
	})
}

// TestLandingPage is flow 8: a company admin sets BMS's Landing Page to
// /tickets in K1's Admin Settings → Module URLs; the next launch lands on
// /tickets.
func TestLandingPage(t *testing.T) {
	bothSchemes(t, nil, func(w *world) {
		w.k1Direct("alice", "Acme MSP", "alice-pass")
		w.step("admin-settings", click("#admin-settings"), visible("#module-urls"))
		w.step("module-urls", click("#module-urls"), visible("#landing-page-BMS"))
		w.step("save-landing-page", typeInto("#landing-page-BMS", "/tickets"), click("#save-BMS"), visible("#saved"),
			eval(`document.querySelector('tr[data-module="BMS"] .target').innerText.trim()`, func(got string) error {
				if !strings.HasSuffix(got, "/tickets") {
					return fmt.Errorf("next launch goes to %q, want .../tickets", got)
				}
				return nil
			}))
		w.step("launch", click("#my-modules"), click("#module-BMS"), click(`#tenants a.tenant[data-tenant="acme"]`),
			visible("#tickets, #identity-headers"))
		w.step("tickets", expectLocation(w.proxy, "/tickets"), visible("#tickets"), expectText("#user-name", "alice"),
			w.expectSessionCookie())
	})
}
