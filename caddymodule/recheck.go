package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/gorilla/securecookie"
	"go.uber.org/zap"
	"golang.org/x/oauth2"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/store"
)

func init() {
	// Kept tokens, recheck claims and kept forms expire; the caddy store
	// deletes them once they have (replay.go's forms included).
	sweptFolders = append(sweptFolders, "k1tokens", "recheck", "form")
}

// RecheckOptions configure how live sessions are checked again with K1, so
// that a user disabled at K1, or whose K1 session ended without a logout
// reaching the proxy, loses BMS within the interval. Caddyfile:
//
//	recheck_interval <duration>|off
type RecheckOptions struct {
	// How often a live session is checked again with K1, in the
	// background and never on the request that notices it is due: with the
	// refresh token K1 gave at login (the proxy asks for `offline_access`),
	// else with the access token at K1's userinfo endpoint. A session K1
	// refuses (`invalid_grant`, 401) is revoked on every instance. Where
	// neither token is usable any more, the next page navigation goes
	// through K1 with `prompt=none`, invisible while the K1 session lives.
	// While K1 is unreachable the session goes on and the check is retried.
	// Each session is checked at most once per interval across instances.
	// At least 1s; a negative value (Caddyfile: `off`) turns rechecks off.
	// Default: 15m.
	RecheckInterval caddy.Duration `json:"recheck_interval,omitempty"`

	recheckEvery  int64    // seconds; 0: off
	offlineScopes []string // scopes plus offline_access; nil: not asked
}

// Recheck outcomes, the outcome label of rechecks_total.
const (
	recheckOK          = "ok"             // K1 still accepts the session
	recheckRevoked     = "revoked"        // K1 refused it; the session was revoked
	recheckUnreachable = "k1_unreachable" // K1 could not be asked; retried
	recheckError       = "error"          // K1 or the store failed otherwise; retried
	recheckAtK1        = "at_k1"          // no usable token: the next navigation goes through K1
)

// recheckViaK1 marks a session entry whose next navigation goes through K1
// with prompt=none (sessionEntry.recheck holds the unix second of the next
// recheck otherwise; 0: not set yet).
const recheckViaK1 = -1

// Bounds of the background work: jobs wait in a queue of recheckQueueSize
// and are run by recheckWorkers goroutines. A due session that finds the
// queue full tries again at its next request a few seconds later.
const (
	recheckWorkers   = 4
	recheckQueueSize = 1024
)

// recheckRetry is how soon a recheck that could not reach K1 is tried
// again (never later than the interval). A variable so tests can shorten it.
var recheckRetry = newTunable(30 * time.Second)

// recheckJob is one session to check.
type recheckJob struct {
	h       *Handler
	e       *sessionEntry
	id, sub string
	sid     string
	expires int64
}

// recheckQueue runs the rechecks of one pooled state.
type recheckQueue struct {
	jobs    chan recheckJob
	codecs  []securecookie.Codec // encrypt the kept K1 tokens in the store
	failing atomic.Bool          // K1 unreachable at the last recheck (log once)
	// noOffline: K1 answered invalid_scope to offline_access, which it
	// lists; it is not asked again.
	noOffline atomic.Bool
}

func newRecheckQueue(cfg *config) *recheckQueue {
	q := &recheckQueue{jobs: make(chan recheckJob, recheckQueueSize)}
	d := cookieDeployment(cfg)
	for _, secret := range cfg.cookieKeys {
		q.codecs = append(q.codecs, newCodec(secret, d, "k1 tokens", 0))
	}
	return q
}

// start runs the workers until ctx ends (the pooled state's start).
func (q *recheckQueue) start(ctx context.Context) {
	for range recheckWorkers {
		go q.run(ctx)
	}
}

func (q *recheckQueue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q.jobs:
			j.h.runRecheck(ctx, j)
		}
	}
}

// keptTokens are the K1 tokens a session is rechecked with. They are kept
// in the store, encrypted, under a hash of the session ID, until the
// session expires; they never leave the proxy and serve only the recheck.
type keptTokens struct {
	Refresh   string `json:"r,omitempty"`
	Access    string `json:"a,omitempty"`
	AccessExp int64  `json:"x,omitempty"` // unix s
}

func recheckKey(kind, sessionID string) string {
	sum := sha256.Sum256([]byte(sessionID))
	return kind + "/" + hex.EncodeToString(sum[:16])
}

func (h *Handler) provisionRecheck() error {
	d := time.Duration(h.RecheckInterval)
	switch {
	case d < 0:
		h.recheckEvery = 0
		return nil
	case d == 0:
		d = 15 * time.Minute
	case d < time.Second:
		return errors.New("recheck_interval: too short (minimum 1s; `off` turns it off)")
	}
	h.recheckEvery = int64(d / time.Second)
	if !slices.Contains(h.cfg.scopes, "offline_access") {
		h.offlineScopes = append(slices.Clip(h.cfg.scopes), "offline_access")
	}
	return nil
}

// scopesFor are the scopes asked of K1: with rechecks on, offline_access
// too (for a refresh token) where K1's discovery lists it, so an OP that
// does not know the scope is never asked for it.
func (h *Handler) scopesFor(p *k1Provider) []string {
	if h.offlineScopes != nil && p.SupportsScope("offline_access") && (h.shared == nil || !h.shared.rechecks.noOffline.Load()) {
		return h.offlineScopes
	}
	return h.cfg.scopes
}

// keepK1Tokens stores what a new session is rechecked with: the refresh
// token, or else the access token and its expiry.
func (h *Handler) keepK1Tokens(ctx context.Context, sess *session) {
	tok := sess.k1Tokens
	if h.recheckEvery == 0 || tok == nil {
		return
	}
	kt := keptTokens{Refresh: tok.RefreshToken}
	if kt.Refresh == "" && tok.AccessToken != "" {
		kt.Access = tok.AccessToken
		if !tok.Expiry.IsZero() {
			kt.AccessExp = tok.Expiry.Unix()
		}
	}
	if kt.Refresh == "" && kt.Access == "" {
		return
	}
	if err := h.storeTokens(ctx, sess.ID, sess.Expires, kt); err != nil {
		h.logger.Warn("keeping the K1 tokens of a session failed; it will be rechecked through K1 at a navigation",
			zap.String("k1_sub", sess.Subject), zap.Error(err))
	}
}

func (h *Handler) storeTokens(ctx context.Context, id string, expires int64, kt keptTokens) error {
	v, err := securecookie.EncodeMulti("k1tokens", &kt, h.shared.rechecks.codecs...)
	if err != nil {
		return err
	}
	ttl := time.Until(time.Unix(expires, 0))
	if ttl <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	return h.shared.store.Put(ctx, recheckKey("k1tokens", id), []byte(v), ttl)
}

func (h *Handler) loadTokens(ctx context.Context, id string) (*keptTokens, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	b, err := h.shared.store.Get(ctx, recheckKey("k1tokens", id))
	if err != nil {
		return nil, err
	}
	var kt keptTokens
	if err := securecookie.DecodeMulti("k1tokens", string(b), &kt, h.shared.rechecks.codecs...); err != nil {
		return nil, store.ErrNotFound // kept under a secret that is gone: as if none
	}
	return &kt, nil
}

// recheckDue is the hot path's part: a memory read, and when the session
// is due, one job handed to the background without waiting. It reports
// whether the session's next navigation must go through K1.
func (h *Handler) recheckDue(e *sessionEntry, now time.Time) (viaK1 bool) {
	if h.recheckEvery == 0 {
		return false
	}
	at := e.recheck.Load()
	if at == recheckViaK1 {
		return true
	}
	due := at
	if due == 0 {
		due = e.s.Issued() + h.recheckEvery
	}
	t := now.Unix()
	if t < due || !e.recheck.CompareAndSwap(at, t+h.recheckEvery) {
		return false
	}
	j := recheckJob{h: h, e: e, id: e.s.ID(), sub: e.s.Subject(), sid: e.s.SID(), expires: e.s.Expires()}
	select {
	case h.shared.rechecks.jobs <- j:
	default:
		e.recheck.CompareAndSwap(t+h.recheckEvery, t+5)
	}
	return false
}

// recheckAtK1 sends a navigation of a session that can no longer be
// rechecked in the background through K1 with prompt=none. It reports
// whether it answered the request.
func (h *Handler) recheckAtK1(w http.ResponseWriter, r *http.Request, rq *request) (bool, error) {
	if !h.recheckDue(rq.entry, rq.now) || !isPageLoad(r) {
		return false, nil
	}
	// While K1 is unreachable the session goes on: a trip to K1 would end
	// on a browser error page.
	if h.shared.rechecks.failing.Load() {
		return false, nil
	}
	if _, err := h.shared.k1.Provider(r.Context()); err != nil {
		return false, nil
	}
	rd := r.URL.RequestURI()
	if !isLocalPath(rd) {
		rd = h.cfg.landingPage
	}
	return true, h.startLogin(w, r, rq, loginRequest{rd: rd, tenant: rq.entry.s.Tenant(), prompt: "none", recheck: true})
}

// recheckLoginFailed ends the session whose prompt=none recheck at K1 came
// back with an error (login_required above all): its K1 session is over.
// It reports whether the callback was such a recheck.
func (h *Handler) recheckLoginFailed(w http.ResponseWriter, r *http.Request, rq *request, reason string) bool {
	secure := rq.secure
	st, err := h.loginStateFor(r, r.URL.Query().Get("state"), secure)
	if err != nil {
		return false
	}
	if r.URL.Query().Get("error") == "invalid_scope" && h.offlineAsked(r.Context()) {
		return h.withoutOffline(w, r, st)
	}
	if !st.Recheck {
		return false
	}
	if sess := h.fullSession(r, rq); sess != nil {
		h.revokeSession(r.Context(), sess)
	}
	h.logger.Info("recheck", zap.String("outcome", recheckRevoked), zap.String("reason", reason))
	h.metrics.recheck(recheckRevoked)
	h.shared.clearSession(w, secure)
	h.expireUpstreamCookies(w, r, secure, true)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, prefix+"login?rd="+url.QueryEscape(st.RD), http.StatusFound)
	return true
}

// offlineAsked reports whether logins ask K1 for offline_access now.
func (h *Handler) offlineAsked(ctx context.Context) bool {
	p, err := h.shared.k1.Provider(ctx)
	return err == nil && slices.Contains(h.scopesFor(p), "offline_access")
}

// withoutOffline answers K1's invalid_scope to offline_access (K1 lists
// the scope but does not allow it to this client): logins stop asking for
// it, and a plain login starts again without it, so turning rechecks on
// never breaks sign-in. Sessions are then rechecked with the access token
// or through K1 with prompt=none.
func (h *Handler) withoutOffline(w http.ResponseWriter, r *http.Request, st *loginState) bool {
	if !h.shared.rechecks.noOffline.Swap(true) {
		h.logger.Warn("KaseyaOne refused the offline_access scope for this client; logins no longer ask for it and rechecks use the access token or prompt=none (allow the scope and the refresh_token grant for the client at KaseyaOne)")
	}
	target := ""
	switch {
	case st.Recheck:
		target = st.RD // the session goes on; its next navigation tries again
	case st.Purpose == "" && !st.K1Initiated:
		target = prefix + "login?rd=" + url.QueryEscape(st.RD)
		if st.Tenant != "" {
			target += "&tenant=" + url.QueryEscape(st.Tenant)
		}
	default:
		return false // the failure page's link starts again, without the scope
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusFound)
	return true
}

// runRecheck checks one session with K1 and revokes it when K1 refuses.
func (h *Handler) runRecheck(ctx context.Context, j recheckJob) {
	now := time.Now()
	if now.Unix() >= j.expires {
		return
	}
	kt, err := h.loadTokens(ctx, j.id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && kt.Refresh == "" && (kt.Access == "" || (kt.AccessExp != 0 && now.Unix() >= kt.AccessExp))) {
		j.e.recheck.Store(recheckViaK1)
		h.metrics.recheck(recheckAtK1)
		return
	}
	if err != nil {
		h.recheckLater(j, now)
		h.metrics.recheck(recheckError)
		h.logger.Warn("recheck: reading the session's K1 tokens from the store failed; will retry", zap.String("k1_sub", j.sub), zap.Error(err))
		return
	}
	// One instance per session and interval asks K1.
	claim := recheckKey("recheck", j.id)
	cctx, cancel := context.WithTimeout(ctx, storeTimeout)
	claimed, err := h.shared.store.PutIfAbsent(cctx, claim, []byte{1}, time.Duration(h.recheckEvery)*time.Second*9/10)
	cancel()
	if err != nil || !claimed {
		return
	}
	// Read again under the claim: the tokens read above may predate the
	// claim by a wait on the store, long enough for another instance to
	// have rotated the refresh token, and K1's invalid_grant to the retired
	// one would end a live session.
	if kt, err = h.loadTokens(ctx, j.id); err != nil {
		return // revoked meanwhile, or the store failed: the next interval tries again
	}
	verdict, newRefresh, err := h.askK1(ctx, j, kt)
	switch verdict {
	case recheckOK:
		if newRefresh != "" && newRefresh != kt.Refresh {
			if err := h.storeTokens(ctx, j.id, j.expires, keptTokens{Refresh: newRefresh}); err != nil {
				h.logger.Warn("recheck: storing the rotated refresh token failed", zap.String("k1_sub", j.sub), zap.Error(err))
			}
		}
		if h.shared.rechecks.failing.CompareAndSwap(true, false) {
			h.logger.Info("recheck: KaseyaOne answers again")
		}
	case recheckRevoked:
		h.revokeSession(ctx, &session{ID: j.id, Subject: j.sub, SID: j.sid, Expires: j.expires})
		h.logger.Info("recheck", zap.String("outcome", recheckRevoked), zap.String("k1_sub", j.sub), zap.Error(err))
		cctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_ = h.shared.store.Put(cctx, recheckKey("k1tokens", j.id), nil, time.Second)
		cancel()
	case recheckUnreachable:
		h.recheckLater(j, now)
		if !h.shared.rechecks.failing.Swap(true) {
			h.logger.Warn("recheck: KaseyaOne is unreachable; sessions go on and their recheck is retried",
				zap.Duration("retry_in", h.retryIn()), zap.Error(err))
		}
	default:
		h.recheckLater(j, now)
		h.logger.Error("recheck: KaseyaOne refused the request itself (check client_id, client_secret and the client's grant types at K1); will retry",
			zap.String("k1_sub", j.sub), zap.Error(err))
	}
	h.metrics.recheck(verdict)
}

func (h *Handler) retryIn() time.Duration {
	return min(recheckRetry.get(), time.Duration(h.recheckEvery)*time.Second)
}

// recheckLater makes the session due again after retryIn, here and (the
// claim) at every instance.
func (h *Handler) recheckLater(j recheckJob, now time.Time) {
	retry := h.retryIn()
	j.e.recheck.Store(now.Add(retry).Unix())
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	_ = h.shared.store.Put(ctx, recheckKey("recheck", j.id), []byte{1}, max(retry*9/10, time.Second))
}

// askK1 is the check itself: the refresh grant, else userinfo. verdict is
// one of the recheck outcomes; newRefresh is a rotated refresh token.
func (h *Handler) askK1(ctx context.Context, j recheckJob, kt *keptTokens) (verdict, newRefresh string, err error) {
	p, err := h.shared.k1.Provider(ctx)
	if err != nil {
		if _, _, ok := misconfigured(err); ok {
			return recheckError, "", err
		}
		return recheckUnreachable, "", err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, h.shared.k1.HTTPClient()), k1Timeout.get())
	defer cancel()
	if kt.Refresh != "" {
		tok, err := h.oauthConfig(p, "").TokenSource(ctx, &oauth2.Token{RefreshToken: kt.Refresh}).Token()
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "invalid_grant":
			return recheckRevoked, "", errors.New("refresh grant: invalid_grant")
		case errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 500:
			return recheckUnreachable, "", err
		case errors.As(err, &re):
			return recheckError, "", errors.New("refresh grant: " + sanitizeCode(re.ErrorCode))
		case err != nil:
			return recheckUnreachable, "", err
		}
		return recheckOK, tok.RefreshToken, nil
	}
	ep := p.UserInfoEndpoint()
	if ep == "" {
		j.e.recheck.Store(recheckViaK1)
		return recheckAtK1, "", nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep, nil)
	if err != nil {
		return recheckError, "", err
	}
	req.Header.Set("Authorization", "Bearer "+kt.Access)
	req.Header.Set("Accept", "application/json")
	resp, err := h.shared.k1.HTTPClient().Do(req)
	if err != nil {
		return recheckUnreachable, "", err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return recheckRevoked, "", errors.New("userinfo: " + resp.Status)
	case resp.StatusCode >= 500:
		return recheckUnreachable, "", errors.New("userinfo: " + resp.Status)
	case resp.StatusCode != http.StatusOK:
		return recheckError, "", errors.New("userinfo: " + resp.Status)
	}
	var ui struct {
		Sub string `json:"sub"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&ui); err != nil {
		return recheckError, "", errors.New("userinfo: unreadable answer")
	}
	if ui.Sub != j.sub {
		return recheckRevoked, "", errors.New("userinfo: another subject")
	}
	return recheckOK, "", nil
}
