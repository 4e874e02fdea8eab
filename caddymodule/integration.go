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
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/k1sso/k1sso/store"
)

// The integration switch: per tenant, a BMS admin turns SP-initiated
// KaseyaOne sign-in on or off (/.k1sso/admin, see admin.go). The state lives
// in the shared store under integration/<tenant>, so it survives restarts and
// every instance sees it; login paths read it through a short in-memory
// cache. The authenticated request path never reads it.

// integrationPurpose marks a login started by the admin page to change a
// tenant's switch (loginState.Purpose).
const integrationPurpose = "integration"

// integrationTTL is how long a tenant's state is served from memory before
// the store is asked again: a change on another instance shows within it.
var integrationTTL = 2 * time.Second

// integrationStoreTimeout bounds a store read or write on a login path.
const integrationStoreTimeout = 3 * time.Second

// reauthWindow is how recent the K1 sign-in that changes a switch must be:
// five minutes. A tunable so tests can shorten it while Caddy serves.
var reauthWindow = newTunable(5 * time.Minute)

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

// integrationCache keeps tenants' states for integrationTTL. It is a part
// of the pooled state (shared.integration), so it lives and goes with the
// store it caches, and two sites with different stores never see each
// other's switches.
type integrationCache struct {
	// fetch makes a burst of misses for one tenant read the store once;
	// other tenants do not wait for it.
	fetch   singleflight.Group
	entries *lru.Cache[string, integrationEntry]
}

type integrationEntry struct {
	st      integrationState
	fetched time.Time
}

func newIntegrationCache() *integrationCache {
	// No error is possible for a positive size.
	entries, _ := lru.New[string, integrationEntry](integrationCacheSize)
	return &integrationCache{entries: entries}
}

// integration returns a tenant's state: from memory when read within
// integrationTTL (unless fresh is set), else from the store. When the store
// fails, a remembered state is used however old; without one the error is
// returned.
func (h *Handler) integration(ctx context.Context, tenant string, fresh bool) (integrationState, error) {
	c := h.shared.integration
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
	if lr, ok := h.shared.store.(store.LegacyReader); ok && errors.Is(err, store.ErrNotFound) && validTenantID(tenant) {
		// A switch stored before keys were namespaced per deployment.
		b, err = lr.GetLegacy(ctx, "integration/"+tenant)
	}
	if errors.Is(err, store.ErrNotFound) {
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
	h.shared.integration.remember(tenant, st)
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

// wayIn is how a browser comes into a tenant. The company link holds for
// every way in; the integration switch concerns only SP-initiated sign-in.
type wayIn int

const (
	// viaLogin is an SP-initiated sign-in: the login link, login_path,
	// /.k1sso/login, and the tenant picker after such a sign-in.
	viaLogin wayIn = iota
	// viaLaunch is a launch from K1 (/.k1sso/initiate), which KaseyaOne
	// lets through a switched-off integration.
	viaLaunch
	// viaSession is a shortcut that reuses a session made earlier instead
	// of a new sign-in at K1. The switch was checked when the session was
	// made; the company link is checked again, as it may be newer.
	viaSession
)

// admit is the one check of the company link and the integration switch:
// every way into a tenant passes it before a session gets that tenant or
// is reused for it (the callback of a login or launch, the tenant picker,
// the shortcuts of login and initiate). nil: the way in is open.
//
// The switch is not an access control: switched off it only refuses
// SP-initiated sign-in, as KaseyaOne documents. What keeps other users out
// of a tenant is the users file and, once an admin has switched the
// integration on, the tenant's link to the admin's K1 company.
func (h *Handler) admit(ctx context.Context, company, tenant string, via wayIn) *loginFailure {
	is, err := h.integration(ctx, tenant, false)
	if err != nil {
		return integrationUnavailable()
	}
	if via == viaLogin && !is.Enabled {
		return h.integrationOff(tenant)
	}
	if is.Company != "" && company != is.Company {
		return companyMismatch(tenant, company)
	}
	return nil
}

func companyMismatch(tenant, company string) *loginFailure {
	f := fail(http.StatusForbidden, "company_mismatch", "Wrong KaseyaOne company",
		"Tenant "+tenant+" is linked to another KaseyaOne company than the one you signed in with ("+company+").")
	f.links = []pageLink{{Href: prefix + "logout", Text: "Sign out of KaseyaOne"}}
	return f
}

// integrationCheck runs at the callback of a login or launch (never of a
// purpose sign-in), after the account was chosen (acc may be nil while the
// user still has to pick a tenant), before the session is written.
// Without a chosen account, tenants the user cannot enter are ruled out:
// none left is a refusal, one left is chosen for the user, several go to
// the tenant picker, which checks again (tenantAllowed).
func (h *Handler) integrationCheck(ctx context.Context, st *loginState, sess *session, acc *account) *loginFailure {
	via := viaLogin
	if st.K1Initiated {
		via = viaLaunch
	}
	if acc != nil {
		return h.admit(ctx, sess.Company, acc.Tenant, via)
	}
	var open []*account
	var first *loginFailure
	for _, a := range h.shared.dir.accounts(sess.Email) {
		f := h.admit(ctx, sess.Company, a.Tenant, via)
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

// tenantAllowed reports why the tenant picker may not put tenant into an
// SP-initiated session (nil: it may).
func (h *Handler) tenantAllowed(ctx context.Context, sess *session, tenant string) *loginFailure {
	return h.admit(ctx, sess.Company, tenant, viaLogin)
}

// sessionAdmitted reports whether the request's session e may be reused
// for its tenant without a new sign-in. The cache does not keep the
// company, so the cookie is decoded again: shortcuts are not the hot path.
func (h *Handler) sessionAdmitted(r *http.Request, rq *request) bool {
	e := rq.entry
	full := h.fullSession(r, rq)
	return full != nil && full.ID == e.s.ID() && h.admit(r.Context(), full.Company, e.s.Tenant(), viaSession) == nil
}

func notTenantAdmin(email, tenant string) *loginFailure {
	f := fail(http.StatusForbidden, "not_tenant_admin", "Not an administrator of this tenant",
		"The KaseyaOne account "+email+" is not a BMS administrator of tenant "+tenant+", so it cannot change the KaseyaOne integration.")
	f.links = []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}
	return f
}

// completePurpose finishes a sign-in made for another purpose than signing
// in (st.Purpose). It writes no session, whatever the outcome: a purpose
// sign-in passes none of the checks of a login (the switch, the company
// link for the tenant it lands in), so it must not leave one. What it
// leaves, when the signer administers a tenant, is the admin page's
// sign-in in the admin cookie (rememberAdmin), which only the admin page
// reads.
//
// For the integration switch it checks what the change needs (a sign-in
// within reauthWindow with auth_time, of an admin of the tenant, of the
// tenant's linked company if it has one), stores the new state and sends
// the browser back to the admin page.
func (h *Handler) completePurpose(w http.ResponseWriter, r *http.Request, secure bool, st *loginState, sess *session) error {
	w.Header().Set("Cache-Control", "no-store")
	back := []pageLink{{Href: prefix + "admin", Text: "Back to the integration settings"}}
	refuse := func(reason, title, msg string) error {
		h.logger.Info("admin sign-in refused", zap.String("purpose", st.Purpose), zap.String("reason", reason),
			zap.String("tenant", st.Tenant), zap.String("k1_sub", sess.Subject), zap.String("email", sess.Email))
		return h.refuse(w, r, http.StatusForbidden, pageData{Title: title, Message: msg, Links: back})
	}
	switch st.Purpose {
	case adminPurpose:
		if len(h.adminTenants(sess.Email)) == 0 {
			return refuse("not_an_admin", "Not a BMS administrator",
				"The KaseyaOne account "+sess.Email+" is not a BMS administrator of any tenant here, so it cannot see the KaseyaOne integration settings.")
		}
		h.rememberAdmin(w, r, secure, sess)
		http.Redirect(w, r, prefix+"admin", http.StatusFound)
		return nil
	case integrationPurpose:
	default:
		return refuse("bad_request", "Sign-in refused", "This sign-in was not started for anything k1sso knows.")
	}
	tenant := st.Tenant
	enable := st.Payload == "on"
	if !validTenantID(tenant) || (st.Payload != "on" && st.Payload != "off") {
		return refuse("bad_request", "Change refused", "The requested change is not valid.")
	}
	h.rememberAdmin(w, r, secure, sess)
	if sess.AuthTime == 0 {
		return refuse("no_auth_time", "Sign-in time unknown",
			"KaseyaOne did not say when you signed in (auth_time), so the sign-in cannot count as a fresh one. The change was not made.")
	}
	signedIn := time.Unix(sess.AuthTime, 0)
	if time.Since(signedIn) > reauthWindow.get() || signedIn.After(time.Now().Add(h.clockSkew())) {
		return refuse("stale_sign_in", "Sign-in too old",
			"Changing the KaseyaOne integration needs a KaseyaOne sign-in made in the last five minutes. Please try again.")
	}
	if acc := h.shared.dir.account(sess.Email, tenant); acc == nil || !acc.hasRole("admin") {
		f := notTenantAdmin(sess.Email, tenant)
		return refuse(f.reason, f.title, f.message)
	}
	unsaved := func(err error) error {
		h.logger.Error("changing the integration switch", zap.String("tenant", tenant), zap.Error(err))
		return h.refuse(w, r, http.StatusServiceUnavailable, pageData{Title: "Change not saved",
			Message: "The change could not be stored. Please try again in a minute.", Links: back})
	}
	// Fresh from the store: the link decides who may change it, and a
	// stale or failed read must not unlink the tenant.
	old, err := h.integration(r.Context(), tenant, true)
	if err != nil {
		return unsaved(err)
	}
	if old.Company != "" && sess.Company != old.Company {
		f := companyMismatch(tenant, sess.Company)
		return refuse(f.reason, f.title, f.message)
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
		return unsaved(err)
	}
	h.logger.Info("integration switched", zap.String("tenant", tenant), zap.Bool("enabled", enable),
		zap.String("k1_sub", sess.Subject), zap.String("email", sess.Email), zap.String("company", next.Company))
	http.Redirect(w, r, prefix+"admin?done="+url.QueryEscape(tenant), http.StatusFound)
	return nil
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
	if t := r.URL.Query().Get("tenant"); validTenantID(t) && h.shared.tenants.has(h.shared.dir, t) {
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
