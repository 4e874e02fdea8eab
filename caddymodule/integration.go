package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The integration switch: per tenant, a BMS admin turns SP-initiated
// KaseyaOne sign-in on or off (/.k1sso/admin, see admin.go). The state lives
// in the shared store under integration/<tenant>, so it survives restarts and
// every instance sees it; login paths read it through a short in-memory
// cache. The authenticated request path never reads it.

func init() {
	featureOptions["integration_default"] = func(h *Handler, d *caddyfile.Dispenser, args []string) error {
		if len(args) != 1 || (args[0] != "on" && args[0] != "off") {
			return d.Errf("k1sso: integration_default takes on or off")
		}
		h.IntegrationDefault = args[0]
		return nil
	}
}

// integrationPurpose marks a login started by the admin page to change a
// tenant's switch (loginState.Purpose).
const integrationPurpose = "integration"

// integrationTTL is how long a tenant's state is served from memory before
// the store is asked again: a change on another instance shows within it.
var integrationTTL = 2 * time.Second

// integrationStoreTimeout bounds a store read or write on a login path.
const integrationStoreTimeout = 3 * time.Second

// reauthWindow (nanoseconds) is how recent the K1 sign-in that changes a
// switch must be: five minutes. Atomic so tests can shorten it while Caddy
// serves.
var reauthWindow atomic.Int64

func init() { reauthWindow.Store(int64(5 * time.Minute)) }

// integrationState is the stored switch of one tenant.
type integrationState struct {
	Enabled   bool      `json:"enabled"`
	Company   string    `json:"company,omitempty"`    // the linked K1 company (k1_company)
	ChangedBy string    `json:"changed_by,omitempty"` // email of the admin who changed it
	ChangedAt time.Time `json:"changed_at,omitzero"`
	// stored is false for a tenant that was never switched: the state is
	// then integration_default.
	stored bool
}

// integrationKey is where a tenant's switch lives in the store. Tenant ids
// of the users file may hold any character; those that are not plain names
// (validTenantID) are hashed, with a "~" that no plain name has.
func integrationKey(tenant string) string {
	if validTenantID(tenant) {
		return "integration/" + tenant
	}
	sum := sha256.Sum256([]byte(tenant))
	return "integration/~" + hex.EncodeToString(sum[:16])
}

// integrationCacheSize bounds the integration cache; only tenants of the
// users file enter it.
const integrationCacheSize = 4096

// provisionIntegration checks integration_default.
func (h *Handler) provisionIntegration() error {
	switch h.IntegrationDefault {
	case "", "on", "off":
		return nil
	}
	return fmt.Errorf("integration_default: %q must be on or off", h.IntegrationDefault)
}

// defaultIntegration is the state of a tenant with no stored state.
func (h *Handler) defaultIntegration() integrationState {
	return integrationState{Enabled: h.IntegrationDefault != "off"}
}

// integrationCache keeps tenants' states for integrationTTL. One per pooled
// state (and so per store), so two sites with different stores never see
// each other's switches.
type integrationCache struct {
	store Store
	// fetch makes a burst of misses for one tenant read the store once;
	// other tenants do not wait for it.
	fetch   singleflight.Group
	entries *lru.Cache[string, integrationEntry]
}

type integrationEntry struct {
	st      integrationState
	fetched time.Time
}

// integrationCaches maps a pooled state (weakly, so it is still collected
// when the pool drops it) to its cache.
var integrationCaches sync.Map // weak.Pointer[shared] -> *integrationCache

func (h *Handler) integrations() *integrationCache {
	wp := weak.Make(h.shared)
	if c, ok := integrationCaches.Load(wp); ok {
		return c.(*integrationCache)
	}
	entries, _ := lru.New[string, integrationEntry](integrationCacheSize)
	c, loaded := integrationCaches.LoadOrStore(wp, &integrationCache{store: h.shared.store, entries: entries})
	if !loaded {
		runtime.AddCleanup(h.shared, func(wp weak.Pointer[shared]) { integrationCaches.Delete(wp) }, wp)
	}
	return c.(*integrationCache)
}

// integration returns a tenant's state: from memory when read within
// integrationTTL (unless fresh is set), else from the store. When the store
// fails, a remembered state is used however old; without one the error is
// returned.
func (h *Handler) integration(ctx context.Context, tenant string, fresh bool) (integrationState, error) {
	c := h.integrations()
	now := time.Now()
	e, ok := c.entries.Get(tenant)
	if ok && !fresh && now.Sub(e.fetched) < integrationTTL {
		return e.st, nil
	}
	key := tenant
	if fresh {
		key = "\x00fresh\x00" + tenant // never served by a read that started earlier
	}
	v, err, _ := c.fetch.Do(key, func() (any, error) {
		if !fresh {
			// Another request may have refreshed it meanwhile.
			if e, ok := c.entries.Get(tenant); ok && time.Since(e.fetched) < integrationTTL {
				return e.st, nil
			}
		}
		// Shared by the requests waiting: the first one leaving must not
		// cancel the others' read.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), integrationStoreTimeout)
		defer cancel()
		st, err := h.loadIntegration(ctx, tenant)
		if err != nil {
			return nil, err
		}
		c.remember(tenant, st)
		return st, nil
	})
	if err != nil {
		h.logger.Error("reading the integration switch", zap.String("tenant", tenant), zap.Error(err))
		if ok {
			return e.st, nil
		}
		return integrationState{}, err
	}
	return v.(integrationState), nil
}

func (c *integrationCache) remember(tenant string, st integrationState) {
	c.entries.Add(tenant, integrationEntry{st: st, fetched: time.Now()})
}

func (h *Handler) loadIntegration(ctx context.Context, tenant string) (integrationState, error) {
	b, err := h.shared.store.Get(ctx, integrationKey(tenant))
	if lr, ok := h.shared.store.(legacyReader); ok && errors.Is(err, errNotFound) && validTenantID(tenant) {
		// A switch stored before keys were namespaced per deployment.
		b, err = lr.getLegacy(ctx, "integration/"+tenant)
	}
	if errors.Is(err, errNotFound) {
		return h.defaultIntegration(), nil
	}
	if err != nil {
		return integrationState{}, err
	}
	var st integrationState
	if err := json.Unmarshal(b, &st); err != nil {
		return integrationState{}, fmt.Errorf("decoding %s: %w", integrationKey(tenant), err)
	}
	st.stored = true
	return st, nil
}

// saveIntegration stores a tenant's new state and remembers it here at once.
func (h *Handler) saveIntegration(ctx context.Context, tenant string, st integrationState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, integrationStoreTimeout)
	defer cancel()
	if err := h.shared.store.Put(ctx, integrationKey(tenant), b, 0); err != nil {
		return err
	}
	st.stored = true
	h.integrations().remember(tenant, st)
	return nil
}

// integrationOff is the refusal of an SP-initiated login into a tenant
// whose integration is switched off.
func (h *Handler) integrationOff(tenant string) *loginFailure {
	f := fail(http.StatusForbidden, "integration_off", "KaseyaOne sign-in is turned off",
		"KaseyaOne sign-in is turned off for tenant "+tenant+". Sign in with your BMS password, or ask a BMS administrator to turn the KaseyaOne integration on.")
	f.links = []pageLink{{Href: h.cfg.loginPath, Text: "Go to the BMS login page"}}
	return f
}

func integrationUnavailable() *loginFailure {
	return fail(http.StatusServiceUnavailable, "store_unavailable", "Sign-in is not possible right now",
		"The KaseyaOne integration settings could not be read. Please try again in a minute.")
}

// spLoginAllowed refuses an SP-initiated login into a tenant whose
// KaseyaOne integration is switched off. tenant may be "": the check then
// happens at the callback, once the account is known.
func (h *Handler) spLoginAllowed(ctx context.Context, tenant string) *loginFailure {
	if tenant == "" {
		return nil
	}
	st, err := h.integration(ctx, tenant, false)
	if err != nil {
		return integrationUnavailable()
	}
	if !st.Enabled {
		return h.integrationOff(tenant)
	}
	return nil
}

// integrationCheck runs at the callback, after the account was chosen (acc
// may be nil while the user still has to pick a tenant), before the session
// is written.
//
//   - A login for the admin page (Purpose integration) passes the switch
//     but must be of an admin of the tenant, so that it never leaves a
//     session to anyone else.
//   - A K1-initiated launch passes: KaseyaOne's BMS guide says launches work
//     while the integration is off.
//   - An SP-initiated login needs the tenant's integration on and, when a
//     company is linked, the signer's k1_company to be that company.
//   - Without a chosen account, tenants the user cannot enter are ruled out:
//     none left is a refusal, one left is chosen for the user, several
//     go to the tenant picker, which checks again (tenantAllowed).
func (h *Handler) integrationCheck(ctx context.Context, st *loginState, sess *session, acc *account) *loginFailure {
	if st.Purpose == integrationPurpose {
		if acc == nil || !acc.hasRole("admin") {
			return notTenantAdmin(sess.Email, st.Tenant)
		}
		return nil
	}
	if st.K1Initiated {
		return nil
	}
	if acc != nil {
		return h.tenantAllowed(ctx, sess, acc.Tenant)
	}
	var open []*account
	var first *loginFailure
	for _, a := range h.shared.dir.accounts(sess.Email) {
		f := h.tenantAllowed(ctx, sess, a.Tenant)
		if f == nil {
			open = append(open, a)
		} else if first == nil {
			first = f
		}
	}
	switch len(open) {
	case 0:
		return first
	case 1:
		sess.Tenant = open[0].Tenant
	}
	return nil
}

// tenantAllowed reports why an SP-initiated session may not enter tenant
// (nil: it may).
func (h *Handler) tenantAllowed(ctx context.Context, sess *session, tenant string) *loginFailure {
	is, err := h.integration(ctx, tenant, false)
	if err != nil {
		return integrationUnavailable()
	}
	if !is.Enabled {
		return h.integrationOff(tenant)
	}
	if is.Company != "" && sess.Company != is.Company {
		f := fail(http.StatusForbidden, "company_mismatch", "Wrong KaseyaOne company",
			"Tenant "+tenant+" is linked to another KaseyaOne company than the one you signed in with ("+sess.Company+").")
		f.links = []pageLink{{Href: prefix + "logout", Text: "Sign out of KaseyaOne"}}
		return f
	}
	return nil
}

func notTenantAdmin(email, tenant string) *loginFailure {
	f := fail(http.StatusForbidden, "not_tenant_admin", "Not an administrator of this tenant",
		"The KaseyaOne account "+email+" is not a BMS administrator of tenant "+tenant+", so it cannot change the KaseyaOne integration.")
	f.links = []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}
	return f
}

// completePurpose finishes a login started for another purpose than
// signing in (st.Purpose), after the session was written.
//
// For the integration switch it checks again what the change needs (a
// sign-in within reauthWindow of an admin of the tenant), stores the new
// state and sends the browser back to the admin page. The session the
// sign-in wrote is kept only where an SP-initiated login would be allowed
// now: after a refusal or a switch to off it is cleared.
func (h *Handler) completePurpose(w http.ResponseWriter, r *http.Request, st *loginState, sess *session) error {
	w.Header().Set("Cache-Control", "no-store")
	if st.Purpose != integrationPurpose {
		http.Redirect(w, r, st.RD, http.StatusFound)
		return nil
	}
	secure := h.secure(r)
	refuse := func(reason, title, msg string) error {
		h.shared.clearSession(w, secure)
		h.logger.Info("integration change refused", zap.String("reason", reason), zap.String("tenant", st.Tenant),
			zap.String("k1_sub", sess.Subject), zap.String("email", sess.Email))
		h.page(w, r, http.StatusForbidden, pageData{Title: title, Message: msg,
			Links: []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}})
		return nil
	}
	tenant := st.Tenant
	enable := st.Payload == "on"
	if !validTenantID(tenant) || (st.Payload != "on" && st.Payload != "off") {
		return refuse("bad_request", "Change refused", "The requested change is not valid.")
	}
	age := time.Since(time.Unix(sess.AuthTime, 0))
	if age > time.Duration(reauthWindow.Load()) {
		return refuse("stale_sign_in", "Sign-in too old",
			"Changing the KaseyaOne integration needs a KaseyaOne sign-in made in the last five minutes. Please try again.")
	}
	if acc := h.shared.dir.account(sess.Email, tenant); acc == nil || !acc.hasRole("admin") {
		f := notTenantAdmin(sess.Email, tenant)
		return refuse(f.reason, f.title, f.message)
	}
	old, err := h.integration(r.Context(), tenant, true)
	if err != nil {
		old = integrationState{}
	}
	next := integrationState{Enabled: enable, Company: old.Company, ChangedBy: sess.Email, ChangedAt: time.Now().UTC().Truncate(time.Second)}
	if enable {
		if sess.Company == "" {
			return refuse("no_company", "Change refused",
				"KaseyaOne did not name your company (k1_company), so the tenant cannot be linked to it.")
		}
		next.Company = sess.Company
	}
	if err := h.saveIntegration(r.Context(), tenant, next); err != nil {
		h.logger.Error("storing the integration switch", zap.String("tenant", tenant), zap.Error(err))
		h.shared.clearSession(w, secure)
		h.page(w, r, http.StatusServiceUnavailable, pageData{Title: "Change not saved",
			Message: "The change could not be stored. Please try again in a minute.",
			Links:   []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}})
		return nil
	}
	h.logger.Info("integration switched", zap.String("tenant", tenant), zap.Bool("enabled", enable),
		zap.String("k1_sub", sess.Subject), zap.String("email", sess.Email), zap.String("company", next.Company))
	if !enable {
		h.shared.clearSession(w, secure)
	}
	http.Redirect(w, r, prefix+"admin?done="+url.QueryEscape(tenant), http.StatusFound)
	return nil
}

// tenants lists the tenants of the directory, sorted by id.
func (d *directory) tenants() []tenantOption {
	seen := map[string]bool{}
	var out []tenantOption
	for _, accs := range d.data.Load().byEmail {
		for _, a := range accs {
			if !seen[a.Tenant] {
				seen[a.Tenant] = true
				out = append(out, tenantOption{ID: a.Tenant, Name: a.TenantName})
			}
		}
	}
	slices.SortFunc(out, func(a, b tenantOption) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// loginLinkEnabled reports whether the "Log in with KaseyaOne" link on BMS's
// login page is live. The login page does not know the tenant, so: the
// page's tenant query parameter when present; else the only tenant of the
// directory when there is one; else the link is disabled only when every
// tenant is off (a user of an enabled tenant must still be able to start).
// A store failure shows the link live: the login itself is checked again.
func (h *Handler) loginLinkEnabled(r *http.Request) bool {
	on := func(t string) bool {
		st, err := h.integration(r.Context(), t, false)
		return err != nil || st.Enabled
	}
	// An unknown tenant counts as none: it is never looked up.
	if t := r.URL.Query().Get("tenant"); validTenantID(t) && h.tenants.has(h.shared.dir, t) {
		return on(t)
	}
	ts := h.shared.dir.tenants()
	if len(ts) == 0 {
		return true
	}
	for _, t := range ts {
		if on(t.ID) {
			return true
		}
	}
	return false
}

// disabledLoginLinkHTML is the login link while KaseyaOne sign-in is off:
// not a link at all, so it cannot be followed.
const disabledLoginLinkHTML = `<span id="k1sso-login-link" class="disabled" aria-disabled="true" title="KaseyaOne sign-in is turned off for this tenant">Log in with KaseyaOne</span>`
