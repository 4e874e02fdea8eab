package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/store"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI is the k1sso part of Caddy's admin API (module ID
// `admin.api.k1sso`): it is served wherever Caddy's admin endpoint is
// (localhost:2019 by default) with the same access rules.
//
//	POST /k1sso/revoke  {"email": "..."} | {"sub": "..."} | {"sid": "..."}
//	GET  /k1sso/status
//
// It reads the running k1sso handlers from the pool of shared state, so it
// needs no configuration and sees every site of the running config.
type adminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.k1sso",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision sets up the logger of the audit lines. The admin API gives
// its modules a context without a module logger, so the logger is named
// here.
func (a *adminAPI) Provision(caddy.Context) error {
	a.logger = caddy.Log().Named("admin.api.k1sso")
	return nil
}

// Routes returns the admin routes of k1sso.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/k1sso/revoke", Handler: caddy.AdminHandlerFunc(a.handleRevoke)},
		{Pattern: "/k1sso/status", Handler: caddy.AdminHandlerFunc(a.handleStatus)},
	}
}

// running returns the started pooled states, in a stable order.
func running() []*shared {
	var out []*shared
	var keys []string
	byKey := map[string]*shared{}
	sharedPool.Range(func(k, v any) bool {
		if s, ok := v.(*shared); ok && s != nil && s.running.Load() {
			byKey[k.(string)] = s
			keys = append(keys, k.(string))
		}
		return true
	})
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// RevokeRequest is the body of POST /k1sso/revoke: exactly one field.
type RevokeRequest struct {
	// Every session of this email (as K1 verified it, any letter case).
	Email string `json:"email,omitempty"`
	// Every session of this K1 user (the ID token's sub).
	Sub string `json:"sub,omitempty"`
	// Every session of this K1 session (the ID token's sid).
	SID string `json:"sid,omitempty"`
}

// RevokeResponse is the answer of POST /k1sso/revoke.
type RevokeResponse struct {
	// Kind is email, sub or sid.
	Kind string `json:"kind"`
	// Handlers is how many k1sso handlers (sites) recorded the revocation.
	Handlers int `json:"handlers"`
	// CachedSessions counts the matching sessions this instance had seen.
	// Sessions live in browser cookies, so sessions other instances (or
	// nobody yet) have seen are ended too but cannot be counted.
	CachedSessions int `json:"cached_sessions"`
}

// maxRevokeBody bounds the body of a revoke request.
const maxRevokeBody = 4 << 10

func (a *adminAPI) handleRevoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: use POST")}
	}
	var req RevokeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRevokeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("decoding the request: %v", err)}
	}
	kind, value, err := req.target()
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	states := running()
	if len(states) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("no k1sso handler is running")}
	}
	resp := RevokeResponse{Kind: kind}
	for _, s := range states {
		// Each state's own clock, the one its sessions were issued by.
		now := s.now()
		rv := store.Revocation{Kind: kind, Value: value,
			// As long as any session it matches (revoke.go).
			Expires: s.revocationUntil(r.Context(), kind, value, now)}
		if kind != store.KindSID {
			rv.Before = now.Unix()
		}
		resp.CachedSessions += s.countMatching(rv, now)
		s.revoker.revoke(r.Context(), rv)
		resp.Handlers++
	}
	k1ssoMetrics.revocation(kind) // once: one operator's revocation, however many sites record it
	a.logger.Info("revocation", zap.String("kind", kind), auditField(kind, value),
		zap.Int("handlers", resp.Handlers), zap.Int("cached_sessions", resp.CachedSessions),
		zap.String("remote_addr", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(resp)
}

// target checks that exactly one field is set and normalises it.
func (req RevokeRequest) target() (kind, value string, err error) {
	n := 0
	for _, v := range []string{req.Email, req.Sub, req.SID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return "", "", errors.New(`give exactly one of "email", "sub" or "sid"`)
	}
	switch {
	case req.Email != "":
		e := normalEmail(req.Email)
		if at := strings.IndexByte(e, '@'); at <= 0 || at == len(e)-1 || len(e) > 254 {
			return "", "", errors.New("email: not an email address")
		}
		return store.KindEmail, e, nil
	case req.Sub != "":
		if len(req.Sub) > 255 {
			return "", "", errors.New("sub: longer than 255 bytes")
		}
		return store.KindSub, req.Sub, nil
	}
	if len(req.SID) > 255 {
		return "", "", errors.New("sid: longer than 255 bytes")
	}
	return store.KindSID, req.SID, nil
}

// auditField is the log field of a revocation's value, the same as in the
// login lines (a sid only as its hash).
func auditField(kind, value string) zap.Field {
	switch kind {
	case store.KindEmail:
		return zap.String("email", value)
	case store.KindSub:
		return zap.String("k1_sub", value)
	}
	return sidField(value)
}

// countMatching counts the cached, unexpired sessions rv ends.
func (s *shared) countMatching(rv store.Revocation, now time.Time) int {
	n := 0
	for _, e := range s.sessions.Values() {
		c := &e.s
		if now.Unix() >= c.Expires() {
			continue
		}
		switch rv.Kind {
		case store.KindEmail:
			if c.Email() == rv.Value && c.Issued() <= rv.Before {
				n++
			}
		case store.KindSub:
			if c.Subject() == rv.Value && c.Issued() <= rv.Before {
				n++
			}
		case store.KindSID:
			if c.SID() == rv.Value {
				n++
			}
		}
	}
	return n
}

// Status is the answer of GET /k1sso/status.
type Status struct {
	// OK is true when every handler is OK (and there is at least one).
	OK       bool            `json:"ok"`
	Handlers []HandlerStatus `json:"handlers"`
}

// HandlerStatus is the state of one k1sso handler (pooled state).
type HandlerStatus struct {
	// OK: discovery loaded, store in sync, users file loaded.
	OK       bool   `json:"ok"`
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// Started is when the handler's background work started.
	Started time.Time `json:"started"`
	// Discovery is when K1's discovery document was loaded (absent: not yet).
	Discovery *time.Time `json:"discovery_loaded,omitempty"`
	// JWKSAgeSeconds is how long ago K1's keys were last fetched (absent:
	// not yet; they are fetched at the first login).
	JWKSAgeSeconds *float64 `json:"jwks_age_seconds,omitempty"`
	// Store is the store module's name (caddy, redis, ...); StoreInSync is false when the last complete
	// read of the revocations is older than the store grace.
	Store       string    `json:"store"`
	StoreInSync bool      `json:"store_in_sync"`
	StoreSynced time.Time `json:"store_synced"`
	// Users is the users file, UsersLoaded when it was last read
	// successfully, UsersEmails how many emails it maps.
	Users       string    `json:"users"`
	UsersLoaded time.Time `json:"users_loaded"`
	UsersEmails int       `json:"users_emails"`
	// CachedSessions is the number of sessions in this instance's cache.
	CachedSessions int `json:"cached_sessions"`
	// Problems says in words what is not OK.
	Problems []string `json:"problems,omitempty"`
}

func (a *adminAPI) handleStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: use GET")}
	}
	st := Status{Handlers: []HandlerStatus{}}
	now := time.Now()
	for _, s := range running() {
		st.Handlers = append(st.Handlers, s.status(now))
	}
	st.OK = len(st.Handlers) > 0
	for _, h := range st.Handlers {
		st.OK = st.OK && h.OK
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !st.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if r.Method == http.MethodHead {
		return nil
	}
	return json.NewEncoder(w).Encode(st)
}

// status reports the state of one pooled state.
func (s *shared) status(now time.Time) HandlerStatus {
	hs := HandlerStatus{Issuer: s.cfg.issuer, ClientID: s.cfg.clientID, Started: s.startedAt,
		Store: s.cfg.store.kind, Users: s.dir.path, CachedSessions: s.sessions.Len()}
	p, loaded := s.k1.Loaded()
	if p != nil {
		hs.Discovery = &loaded
		if at, ok := p.KeysFetched(); ok {
			age := now.Sub(at).Seconds()
			hs.JWKSAgeSeconds = &age
		}
	} else {
		hs.Problems = append(hs.Problems, "KaseyaOne discovery not loaded")
	}
	hs.StoreSynced = time.Unix(0, s.revocations.syncedAt.Load())
	hs.StoreInSync = !s.revocations.stale(now)
	if !hs.StoreInSync {
		hs.Problems = append(hs.Problems, "store not in sync")
	}
	d := s.dir.data.Load()
	hs.UsersLoaded, hs.UsersEmails = d.loaded, len(d.byEmail)
	hs.OK = len(hs.Problems) == 0
	return hs
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
