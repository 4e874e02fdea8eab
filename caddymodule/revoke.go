package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/k1sso/k1sso/store"
)

// storeGrace is how long an instance keeps accepting sessions after it last
// knew itself in sync with the store's revocations. Past it, a revocation
// made at another instance could be missing here, so sessions are refused
// with a 503 (not cleared: they work again once the store is back). See
// docs/store.md.
const storeGrace = 5 * time.Second

// clockShift (nanoseconds) moves the clock that session lifetimes,
// revocations and the caddy store's expiries are measured by, so tests can
// let hours pass. It is 0 outside tests.
var clockShift = newTunable(0)

// clockNow is the time of sessions and revocations (see clockShift).
func clockNow() time.Time { return time.Now().Add(clockShift.get()) }

// revocationSet is this instance's copy of every revocation: what the store
// had when the instance started, what other instances pushed or stored
// since, and what this instance revoked itself. The hot path reads only
// this. An entry leaves the set only when it expires, never because the
// store is unreachable.
type revocationSet struct {
	mu   sync.RWMutex
	ids  map[string]int64 // session ID → expires
	sids map[string]int64 // K1 sid → expires
	// K1 sub → {issued at or before (this instance's clock), expires,
	// ID token issued at or before (K1's clock)}
	subs map[string][3]int64
	// email → {issued at or before, expires}; from the admin API (adminapi.go)
	emails map[string][2]int64

	syncedAt atomic.Int64 // unix nanoseconds; every revocation stored before it is here
	// now is the clock revocations expire by.
	now func() time.Time
}

func newRevocationSet() *revocationSet {
	return &revocationSet{ids: map[string]int64{}, sids: map[string]int64{}, subs: map[string][3]int64{},
		emails: map[string][2]int64{}, now: clockNow}
}

func (s *revocationSet) Add(rv store.Revocation) {
	if !rv.Valid() || s.now().Unix() > rv.Expires {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch rv.Kind {
	case store.KindID:
		s.ids[rv.Value] = max(s.ids[rv.Value], rv.Expires)
	case store.KindSID:
		s.sids[rv.Value] = max(s.sids[rv.Value], rv.Expires)
	case store.KindSub:
		v := s.subs[rv.Value]
		if rv.K1 {
			v[2] = max(v[2], rv.Before)
		} else {
			v[0] = max(v[0], rv.Before)
		}
		v[1] = max(v[1], rv.Expires)
		s.subs[rv.Value] = v
	case store.KindEmail:
		old := s.emails[rv.Value]
		s.emails[rv.Value] = [2]int64{max(old[0], rv.Before), max(old[1], rv.Expires)}
	}
}

func (s *revocationSet) Synced(at time.Time) {
	n := at.UnixNano()
	for {
		old := s.syncedAt.Load()
		if n <= old || s.syncedAt.CompareAndSwap(old, n) {
			return
		}
	}
}

// stale reports whether the set may lack revocations made elsewhere: it
// was last known complete more than storeGrace ago.
func (s *revocationSet) stale(now time.Time) bool {
	return now.UnixNano()-s.syncedAt.Load() > int64(storeGrace)
}

// matches reports whether a revocation ends the session.
func (s *revocationSet) matches(sess *cachedSession) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.ids[sess.ID()]; ok {
		return true
	}
	if sess.SID() != "" {
		if _, ok := s.sids[sess.SID()]; ok {
			return true
		}
	}
	// A logout at K1 compares K1's times (ID token and logout token iat),
	// so no instance's clock skew lets a session escape it.
	if v, ok := s.subs[sess.Subject()]; ok && (sess.Issued() <= v[0] || sess.K1Issued() <= v[2]) {
		return true
	}
	if len(s.emails) > 0 {
		if v, ok := s.emails[sess.Email()]; ok && sess.Issued() <= v[0] {
			return true
		}
	}
	return false
}

// sweep drops expired entries.
func (s *revocationSet) sweep(now time.Time) {
	t := now.Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, x := range s.ids {
		if t > x {
			delete(s.ids, k)
		}
	}
	for k, x := range s.sids {
		if t > x {
			delete(s.sids, k)
		}
	}
	for k, v := range s.subs {
		if t > v[1] {
			delete(s.subs, k)
		}
	}
	for k, v := range s.emails {
		if t > v[1] {
			delete(s.emails, k)
		}
	}
}

// revoker records revocations: in memory at once, then in the store. A
// revocation the store refused is kept and retried every second until the
// store takes it, so it reaches the other instances when the store is back.
type revoker struct {
	store  store.Store
	set    *revocationSet
	logger *zap.Logger

	mu      sync.Mutex
	pending []store.Revocation
}

func newRevoker(st store.Store, set *revocationSet, logger *zap.Logger) *revoker {
	return &revoker{store: st, set: set, logger: logger}
}

// revoke ends sessions on this instance now and on every instance through
// the store. It never fails: when the store is unreachable, the revocation
// waits for it (see retry).
func (r *revoker) revoke(ctx context.Context, rv store.Revocation) {
	r.set.Add(rv)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if err := r.store.Revoke(ctx, rv); err != nil {
		r.logger.Warn("storing a revocation failed; it holds here and will be retried", zap.String("kind", rv.Kind), zap.Error(err))
		r.mu.Lock()
		r.pending = addPending(r.pending, rv)
		r.mu.Unlock()
	}
}

// retry stores the pending revocations that have not expired.
func (r *revoker) retry(ctx context.Context) {
	r.mu.Lock()
	todo := r.pending
	r.pending = nil
	r.mu.Unlock()
	now := r.set.now().Unix()
	var left []store.Revocation
	for i, rv := range todo {
		if now > rv.Expires {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := r.store.Revoke(cctx, rv)
		cancel()
		if err != nil {
			left = append(left, todo[i:]...)
			break
		}
	}
	if len(todo) > 0 && len(left) == 0 {
		r.logger.Info("pending revocations stored", zap.Int("count", len(todo)))
	}
	r.mu.Lock()
	for _, rv := range r.pending {
		left = addPending(left, rv)
	}
	r.pending = left
	r.mu.Unlock()
}

// addPending adds rv to the pending revocations unless one of the same
// name (the same store key) is there, which then keeps the later expiry:
// the same logout repeated while the store is down does not grow the list.
func addPending(pending []store.Revocation, rv store.Revocation) []store.Revocation {
	n := rv.Name()
	for i := range pending {
		if pending[i].Name() == n {
			pending[i].Expires = max(pending[i].Expires, rv.Expires)
			return pending
		}
	}
	return append(pending, rv)
}

// run keeps the set in sync with the store until ctx ends: the store's
// Watch feeds it, and once a second pending revocations are retried and
// expired entries dropped.
func (r *revoker) run(ctx context.Context) {
	go r.store.Watch(ctx, r.set)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.retry(ctx)
			r.set.sweep(r.set.now())
		}
	}
}

// load reads every stored revocation; an instance does this before it
// serves anything.
func (r *revoker) load(ctx context.Context) error {
	start := time.Now()
	all, err := r.store.Revocations(ctx)
	if err != nil {
		return err
	}
	for _, rv := range all {
		r.set.Add(rv)
	}
	r.set.Synced(start)
	return nil
}

// revokeSession ends one proxy session everywhere.
func (h *Handler) revokeSession(ctx context.Context, s *session) {
	h.shared.revoker.revoke(ctx, store.Revocation{Kind: store.KindID, Value: s.ID, Expires: s.Expires})
	h.logger.Info("revocation", zap.String("kind", store.KindID), zap.String("k1_sub", s.Subject), sidField(s.SID))
	h.metrics.revocation(store.KindID)
}

// loginRecordFolder holds the login records: per K1 sid and per K1 sub,
// the latest expiry of any session this deployment issued for it, written
// at login by the instance that issued it (Store.Extend keeps the latest).
// A logout revokes only what has a record, and only until that expiry:
// what a logout request can name never grows the store beyond the real
// logins, and a revocation outlives every session it matches, whatever
// session_lifetime the issuing instance had.
const loginRecordFolder = "login"

func loginRecordKey(kind, value string) string {
	sum := sha256.Sum256([]byte(value))
	return loginRecordFolder + "/" + kind + "/" + hex.EncodeToString(sum[:16])
}

// recordLogin stores the login records of a new session, before its cookie
// is written.
func (h *Handler) recordLogin(ctx context.Context, sess *session) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if sess.SID != "" {
		if err := h.shared.store.Extend(ctx, loginRecordKey(store.KindSID, sess.SID), sess.Expires); err != nil {
			return err
		}
	}
	if err := h.shared.store.Extend(ctx, loginRecordKey(store.KindSub, sess.Subject), sess.Expires); err != nil {
		return err
	}
	return h.shared.store.Extend(ctx, loginRecordKey(store.KindEmail, sess.Email), sess.Expires)
}

// revocationUntil is when an operator's revocation (admin API) of a sid,
// sub or email may end: when the latest session its login record names
// ends, and no sooner than this instance's session lifetime from now (for
// a store that cannot answer).
func (s *shared) revocationUntil(ctx context.Context, kind, value string, now time.Time) int64 {
	life := time.Duration(s.lifetime.Load()) * time.Second
	if life == 0 {
		life = s.cfg.lifetime
	}
	until := now.Add(life + time.Minute).Unix()
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if rec, ok, err := store.StoredTime(ctx, s.store, loginRecordKey(kind, value), s.now()); err == nil && ok {
		until = max(until, rec)
	}
	return until
}

// revokeK1 ends every proxy session of a K1 session (sid), or of a K1 user
// (sub, sessions whose ID token K1 issued until before: unix s, K1's
// clock) when there is no sid, until
// the last of them ends. known is false (nothing revoked, nothing stored)
// when this deployment never issued a session of that sid or sub that can
// still be valid; err when the store could not tell (nothing revoked).
func (h *Handler) revokeK1(ctx context.Context, sid, sub string, before int64) (known bool, err error) {
	kind, value := store.KindSID, sid
	if sid == "" {
		kind, value = store.KindSub, sub
	}
	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	until, ok, err := store.StoredTime(rctx, h.shared.store, loginRecordKey(kind, value), h.shared.now())
	if err != nil || !ok {
		return false, err
	}
	h.revokeK1Until(ctx, sid, sub, before, until)
	return true, nil
}

// revokeK1Until is revokeK1 with the revocation's expiry given.
func (h *Handler) revokeK1Until(ctx context.Context, sid, sub string, before, until int64) {
	if sid != "" {
		h.shared.revoker.revoke(ctx, store.Revocation{Kind: store.KindSID, Value: sid, Expires: until})
		h.logger.Info("revocation", zap.String("kind", store.KindSID), sidField(sid))
		h.metrics.revocation(store.KindSID)
		return
	}
	h.shared.revoker.revoke(ctx, store.Revocation{Kind: store.KindSub, Value: sub, Before: before, K1: true, Expires: until})
	h.logger.Info("revocation", zap.String("kind", store.KindSub), zap.String("k1_sub", sub))
	h.metrics.revocation(store.KindSub)
}

// revocationState tells the two reasons a session is refused apart:
// revoked, it was ended by a logout (here, at K1 or at another instance);
// stale, it may have been while the store is out of reach. It reads
// memory only.
func (h *Handler) revocationState(e *sessionEntry) (revoked, stale bool) {
	rs := h.shared.revocations
	if rs.matches(&e.s) {
		return true, false
	}
	// Being in sync is a matter of real time, whatever the clock of
	// sessions says.
	return false, rs.stale(time.Now())
}

// serveRevoked answers a request whose session was revoked: its k1sso and
// BMS cookies are cleared and it goes to the login page (401 for API
// calls); it is never forwarded with identity. A session refused only
// because the store is out of reach (sessionStale) keeps its cookie and
// gets a 503.
func (h *Handler) serveRevoked(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, rq *request) error {
	if rq.state == sessionStale {
		if h.isPublic(r) {
			return h.forward(w, r, next, rq, passAnonymous)
		}
		w.Header().Set("Retry-After", "5")
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || wantsJSON(r) {
			return h.refuseJSON(w, r, http.StatusServiceUnavailable, "Sign-in temporarily unavailable: the session store is unreachable",
				map[string]string{"error": "session_store_unavailable"})
		}
		return h.refuse(w, r, http.StatusServiceUnavailable, pageData{
			Title:   "Sign-in temporarily unavailable",
			Message: "Your KaseyaOne session cannot be checked right now because the session store is unreachable. Please try again in a moment.",
			Links:   []pageLink{h.retryLink(r)},
		})
	}
	h.shared.clearSession(w, rq.secure)
	h.expireUpstreamCookies(w, r, rq.secure, true)
	if h.isPublic(r) {
		// The login page itself: forward it without identity and without
		// the cookies just cleared, so BMS shows its login form.
		return h.forward(w, r, next, rq, passCleared)
	}
	w.Header().Set("Cache-Control", "no-store")
	if done, err := h.keepForm(w, r, rq); done {
		return err
	}
	if !rq.navigation(r) {
		return h.challenge(w, r, "session_ended", h.cfg.loginPath)
	}
	http.Redirect(w, r, h.cfg.loginPath, http.StatusFound)
	return nil
}

// expireUpstreamCookies expires BMS's session cookies (Path=/). With
// onlyPresent, only those the request carries.
func (h *Handler) expireUpstreamCookies(w http.ResponseWriter, r *http.Request, secure, onlyPresent bool) {
	for _, name := range h.UpstreamCookies {
		if onlyPresent {
			if _, err := r.Cookie(name); err != nil {
				continue
			}
		}
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0),
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	}
}
