package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the k1sso app (module ID `k1sso`). It has no options and needs no
// entry in the config: every k1sso handler loads it while it is
// provisioned. Caddy starts apps only for a config it runs, never for one
// it only validates (`caddy validate`, `caddy adapt --validate`), so the
// work that reaches K1 and the store waits for Start: loading the assertion
// key and the revocations, warming discovery, watching the store and the
// users file. A config that is only validated needs neither K1 nor the
// store.
type App struct {
	// Caddy provisions and starts one config's modules in one goroutine,
	// so shared needs no lock.
	shared []*shared
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "k1sso",
		New: func() caddy.Module { return new(App) },
	}
}

// register adds a handler's pooled state to the states started with this
// config. Called from Handler.Provision.
func (a *App) register(s *shared) {
	for _, o := range a.shared {
		if o == s {
			return
		}
	}
	a.shared = append(a.shared, s)
}

// Start starts the background work of every pooled state of this config.
// A state already running (kept from the previous config) is left as it
// is. An instance that cannot read the store does not start: it could
// neither sign assertions with the shared key nor know the revocations.
func (a *App) Start() error {
	for _, s := range a.shared {
		if err := s.start(); err != nil {
			return err
		}
	}
	return nil
}

// Stop does nothing: the pooled states stop when the last config using
// them is cleaned up (shared.Destruct).
func (a *App) Stop() error { return nil }

// storeStartTimeout bounds the store reads of start.
const storeStartTimeout = 10 * time.Second

// start loads what needs the store and starts the background work, once.
// A failed start can be tried again (by the next config, or a request).
func (s *shared) start() error {
	if s.running.Load() {
		return nil
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if s.running.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.bg, storeStartTimeout)
	defer cancel()
	signer, err := loadAssertionSigner(ctx, s.store)
	if err != nil {
		return fmt.Errorf("k1sso: store: loading the assertion key: %w", err)
	}
	if err := s.revoker.load(ctx); err != nil {
		return fmt.Errorf("k1sso: store: loading revocations: %w", err)
	}
	s.signer = signer
	s.startedAt = time.Now()
	go s.k1.Warm(s.bg)
	go s.revoker.run(s.bg)
	go s.dir.watch()
	s.rechecks.start(s.bg)
	s.running.Store(true)
	return nil
}

// ready makes sure the pooled state is started before a request uses it.
// Caddy starts the apps of a config one by one, so the HTTP server may
// take a request before this app's Start has run; that request starts the
// state itself (or waits for the start under way).
func (s *shared) ready() error {
	if s.running.Load() {
		return nil
	}
	return s.start()
}

// Interface guards
var _ caddy.App = (*App)(nil)

// registerApp loads the k1sso app of the config being provisioned and
// hands it the handler's pooled state, so Caddy's start of the config
// starts it.
func (h *Handler) registerApp(ctx caddy.Context) error {
	v, err := ctx.App("k1sso")
	if err != nil {
		return err
	}
	v.(*App).register(h.shared)
	return nil
}
