// Package k1dev is a development KaseyaOne (K1): a real OpenID Provider built
// on github.com/zitadel/oidc/v3/pkg/op with K1's pages — a two-step login
// (username, company, password, then a 6-digit TOTP code), My Modules with
// tenant lists, the app launcher, Admin Settings → Module URLs — and
// RP-Initiated, Back-Channel and Front-Channel Logout.
//
// Everything lives in memory; the world (companies, users, clients, modules)
// comes from a Config:
//
//	srv, err := k1dev.New("http://127.0.0.1:9000", k1dev.DefaultConfig())
//	...
//	http.ListenAndServe("127.0.0.1:9000", srv)
package k1dev

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// Server is a running k1dev: an http.Handler serving the OpenID Provider
// endpoints and K1's pages. Create it with New.
type Server struct {
	issuer   string
	secure   bool // issuer is https: cookies get Secure
	cfg      *Config
	keys     keyRing
	storage  *storage
	provider *op.Provider
	mux      *http.ServeMux
	http     *http.Client // back-channel logout deliveries

	// sessions are the K1 browser sessions and disabled users; the
	// storage asks them, never the Server.
	sessions *browserSessions

	// mu guards the login steps, lockouts, logged-out pages and landing
	// pages; it is never held while the sessions' or storage's lock is.
	mu          sync.Mutex
	loginTxs    map[string]*loginTx
	failures    map[string]int       // wrong codes in a row, by username
	lockedUntil map[string]time.Time // by username
	loggedOut   map[string]*loggedOutPage
}

// New returns a Server for issuer (e.g. "http://127.0.0.1:9000"; http is
// allowed, as this is a development tool) with a copy of cfg (nil means
// DefaultConfig). A trailing "/" of issuer is dropped: the Server publishes
// the issuer without it (see Issuer).
func New(issuer string, cfg *Config, opts ...Option) (*Server, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	cfg = cfg.clone()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("checking config: %w", err)
	}
	iu, err := url.Parse(issuer)
	if err != nil || (iu.Scheme != "http" && iu.Scheme != "https") || iu.Host == "" {
		return nil, fmt.Errorf("parsing issuer %q: need an http(s) URL", issuer)
	}
	issuer = strings.TrimSuffix(issuer, "/")
	s := &Server{
		issuer:      issuer,
		secure:      iu.Scheme == "https",
		cfg:         cfg,
		http:        &http.Client{Timeout: deliveryTimeout},
		sessions:    newBrowserSessions(),
		loginTxs:    map[string]*loginTx{},
		failures:    map[string]int{},
		lockedUntil: map[string]time.Time{},
		loggedOut:   map[string]*loggedOutPage{},
	}
	for _, o := range opts {
		o(s)
	}
	if err := s.keys.rotate(); err != nil {
		return nil, err
	}
	s.storage = newStorage(cfg, &s.keys, s.sessions)
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("generating crypto key: %w", err)
	}
	opCfg := &op.Config{
		CryptoKey:                         cryptoKey,
		DefaultLogoutRedirectURI:          "/",
		CodeMethodS256:                    true,
		GrantTypeRefreshToken:             true,
		AuthMethodPost:                    true,
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
	}
	opOpts := []op.Option{}
	if iu.Scheme == "http" {
		opOpts = append(opOpts, op.WithAllowInsecure())
	}
	s.provider, err = op.NewProvider(opCfg, opStorage{s.storage, s}, op.StaticIssuer(issuer), opOpts...)
	if err != nil {
		return nil, fmt.Errorf("creating provider: %w", err)
	}
	s.routes()
	return s, nil
}

// opStorage is the op.Storage the provider gets: the token storage, with
// end_session answered by the Server, as it ends browser sessions, lists
// front-channel iframes and posts back-channel logouts.
type opStorage struct {
	*storage
	srv *Server
}

var _ op.CanTerminateSessionFromRequest = opStorage{}

// TerminateSessionFromRequest ends the K1 session(s) of an end_session
// request and returns where to send the browser.
func (o opStorage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	return o.srv.endSessionRequest(ctx, req), nil
}

// Issuer is the issuer the Server publishes in its discovery document (a
// relying party's configured issuer must equal it).
func (s *Server) Issuer() string { return s.issuer }

// routes registers K1's pages; everything else goes to the op.
func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	m.HandleFunc("GET /login", s.handleLogin)
	m.HandleFunc("POST /login/password", s.handlePassword)
	m.HandleFunc("GET /login/code", s.handleCodeForm)
	m.HandleFunc("POST /login/code", s.handleCode)
	m.HandleFunc("GET /{$}", s.needSession(s.handleHome))
	m.HandleFunc("GET /modules", s.needSession(s.handleModules))
	m.HandleFunc("GET /modules/{module}", s.needSession(s.handleTenants))
	m.HandleFunc("GET /launcher", s.needSession(s.handleLauncher))
	m.HandleFunc("GET /launch/{module}/{tenant}", s.needSession(s.handleLaunch))
	m.HandleFunc("GET /admin", s.needSession(s.handleAdmin))
	m.HandleFunc("GET /admin/module-urls", s.needSession(s.handleModuleURLs))
	m.HandleFunc("POST /admin/module-urls", s.needSession(s.handleModuleURLsPost))
	m.HandleFunc("GET /logout", s.handleLogout)
	m.HandleFunc("POST /logout", s.handleLogout)
	m.HandleFunc("GET /logged-out", s.handleLoggedOut)
	m.HandleFunc("POST /dev/rotate-key", s.handleRotateKey)
	m.HandleFunc("POST /dev/disable-user", s.handleDisableUser)
	m.HandleFunc("POST /dev/enable-user", s.handleDisableUser)
	m.Handle("/", s.provider)
	s.mux = m
}

// ServeHTTP serves the OP endpoints and K1's pages.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if sess := s.sessionFromRequest(r); sess != nil {
		r = r.WithContext(withSession(r.Context(), sess))
	}
	s.mux.ServeHTTP(w, r)
}

// handleDiscovery serves the op's discovery document plus the front-channel
// logout fields zitadel's struct lacks.
func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	doc := op.CreateDiscoveryConfig(op.ContextWithIssuer(r.Context(), s.issuer), s.provider, s.storage)
	data, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, "encoding discovery", http.StatusInternalServerError)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		http.Error(w, "encoding discovery", http.StatusInternalServerError)
		return
	}
	m["frontchannel_logout_supported"] = true
	m["frontchannel_logout_session_supported"] = true
	m["backchannel_logout_supported"] = true
	m["backchannel_logout_session_supported"] = true
	delete(m, "check_session_iframe")
	delete(m, "device_authorization_endpoint")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if err := json.NewEncoder(w).Encode(m); err != nil {
		slog.Warn("k1dev: writing discovery", "err", err)
	}
}

// handleRotateKey rotates the signing key; only from a loopback address.
func (s *Server) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	if !isLoopbackAddr(r.RemoteAddr) {
		http.Error(w, "forbidden: only from loopback", http.StatusForbidden)
		return
	}
	if err := s.RotateKey(); err != nil {
		http.Error(w, "rotating key failed", http.StatusInternalServerError)
		return
	}
	slog.Info("k1dev: signing key rotated", "kid", s.keys.current().id)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "rotated; new kid", s.keys.current().id)
}

// isLoopbackAddr reports whether a RemoteAddr (host:port) is a loopback IP.
func isLoopbackAddr(addr string) bool {
	u, ok := loopbackURL("http://" + addr)
	return ok && u.Hostname() != "localhost"
}
