package caddymodule

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
)

// Prometheus metrics of k1sso, served by Caddy's metrics endpoint (the admin
// API's /metrics, or a `metrics` handler) under caddy_k1sso_*.
//
// The collectors exist once per process and are registered into the metrics
// registry of every config that uses k1sso: Caddy gives each config load a
// new registry, and counters must not restart at zero on a reload. Pooled
// state (the directory, the K1 client's transport) outlives a config and
// reports to the same process-wide collectors.

const (
	metricsNamespace = "caddy"
	metricsSubsystem = "k1sso"
)

// Label values of logouts_total{kind}.
const (
	logoutBMS          = "bms"          // BMS's logout_path, intercepted
	logoutK1           = "k1"           // /.k1sso/logout
	logoutBackchannel  = "backchannel"  // K1's back-channel logout token
	logoutFrontchannel = "frontchannel" // K1's front-channel logout iframe
)

// Label values of injected_pages_total{kind}.
const (
	injectedLoginLink = "login_link"
	injectedLauncher  = "launcher"
)

// metrics are k1sso's collectors. A nil *metrics records nothing, so code
// paths that run without Provision (unit tests) need no guard.
type metrics struct {
	logins        *prometheus.CounterVec
	logouts       *prometheus.CounterVec
	revocations   *prometheus.CounterVec
	k1Duration    *prometheus.HistogramVec
	jwksRefreshes prometheus.Counter
	dirReloads    *prometheus.CounterVec
	injected      *prometheus.CounterVec
	rechecks      *prometheus.CounterVec

	mu      sync.Mutex
	reasons map[string]struct{} // login reasons seen, bounded
}

// k1ssoMetrics are the process-wide collectors.
var k1ssoMetrics = newMetrics()

func newMetrics() *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
	}
	return &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts(opts("logins_total",
			"Finished K1 logins at the callback, by outcome (success, failure) and reason.")), []string{"outcome", "reason"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts(opts("logouts_total",
			"Logouts, by kind: bms (logout_path), k1 (/.k1sso/logout), backchannel, frontchannel.")), []string{"kind"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts(opts("revocations_total",
			"Revocations made here, by what they name: id (one proxy session), sid or sub (every proxy session of a K1 session or K1 user, however many), email (admin API). One per revocation, however many sites record it.")), []string{"kind"}),
		k1Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "k1_request_duration_seconds",
			Help:    "Time until K1 answered a request from the proxy (headers), by endpoint: discovery, token, jwks, userinfo, other.",
			Buckets: prometheus.DefBuckets,
		}, []string{"endpoint"}),
		jwksRefreshes: prometheus.NewCounter(prometheus.CounterOpts(opts("jwks_refreshes_total",
			"Fetches of K1's JWKS (first use and refreshes on an unknown key id)."))),
		dirReloads: prometheus.NewCounterVec(prometheus.CounterOpts(opts("directory_reloads_total",
			"Reloads of the users file after it changed, by result (success, error).")), []string{"result"}),
		injected: prometheus.NewCounterVec(prometheus.CounterOpts(opts("injected_pages_total",
			"BMS pages rewritten by the proxy, by kind: login_link, launcher, expiry_notice.")), []string{"kind"}),
		rechecks: prometheus.NewCounterVec(prometheus.CounterOpts(opts("rechecks_total",
			"Rechecks of live sessions with K1, by outcome: ok, revoked, k1_unreachable (retried), error (retried), at_k1 (the next navigation goes through K1).")), []string{"outcome"}),
		reasons: map[string]struct{}{},
	}
}

// collectors lists the collectors for registration.
func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.logins, m.logouts, m.revocations, m.k1Duration, m.jwksRefreshes, m.dirReloads, m.injected, m.rechecks,
		streamsOpen, streamsClosed} // streams.go
}

// provisionMetrics registers the collectors into the config's metrics
// registry and returns the metrics the handler records into. A collector
// already registered there (a second k1sso handler in the same config) is
// reused. A registry that refuses a collector costs the metric, not the
// start: it is logged.
func provisionMetrics(ctx caddy.Context, logger *zap.Logger) *metrics {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return k1ssoMetrics
	}
	for _, c := range k1ssoMetrics.collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue // the same process-wide collector, registered by another handler
			}
			logger.Warn("registering a k1sso metric", zap.Error(err))
		}
	}
	return k1ssoMetrics
}

// maxLoginReasons bounds the reason label of logins_total.
const maxLoginReasons = 64

// login counts one finished login. outcome is "success" or "failure";
// reason is a loginFailure reason ("" for success).
func (m *metrics) login(outcome, reason string) {
	if m == nil {
		return
	}
	m.logins.WithLabelValues(outcome, m.boundReason(reason)).Inc()
}

// boundReason keeps the reason label's values few: K1's error codes come
// from the browser's query string, so only the standard ones get their own
// label, and at most maxLoginReasons values are ever used.
func (m *metrics) boundReason(reason string) string {
	if code, ok := strings.CutPrefix(reason, "k1_error_"); ok {
		if _, std := oauthErrorCodes[code]; !std {
			return "k1_error_other"
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.reasons[reason]; ok {
		return reason
	}
	if len(m.reasons) >= maxLoginReasons {
		return "other"
	}
	m.reasons[reason] = struct{}{}
	return reason
}

// oauthErrorCodes are the error codes of RFC 6749 §4.1.2.1 and OIDC Core
// §3.1.2.6 that an authorization response may carry.
var oauthErrorCodes = map[string]struct{}{
	"invalid_request": {}, "unauthorized_client": {}, "access_denied": {}, "unsupported_response_type": {},
	"invalid_scope": {}, "server_error": {}, "temporarily_unavailable": {}, "interaction_required": {},
	"login_required": {}, "account_selection_required": {}, "consent_required": {}, "invalid_request_uri": {},
	"invalid_request_object": {}, "request_not_supported": {}, "request_uri_not_supported": {},
	"registration_not_supported": {},
}

// logout counts one logout of a kind (logoutBMS, logoutK1, ...).
func (m *metrics) logout(kind string) {
	if m == nil {
		return
	}
	m.logouts.WithLabelValues(kind).Inc()
}

// revocation counts one revocation of a kind (store.KindID, KindSID,
// KindSub, KindEmail). Sessions are not counted: those of a sid, sub or
// email live in browser cookies, on every instance or none, and no
// instance can tell how many there are.
func (m *metrics) revocation(kind string) {
	if m == nil {
		return
	}
	m.revocations.WithLabelValues(kind).Inc()
}

// injectedPage counts one rewritten BMS page (injectedLoginLink,
// injectedLauncher).
func (m *metrics) injectedPage(kind string) {
	if m == nil {
		return
	}
	m.injected.WithLabelValues(kind).Inc()
}

// recheck counts one recheck of a live session by outcome.
func (m *metrics) recheck(outcome string) {
	if m == nil {
		return
	}
	m.rechecks.WithLabelValues(outcome).Inc()
}

// directoryReload counts one reload of the users file; result is "success"
// or "error".
func (m *metrics) directoryReload(result string) {
	if m == nil {
		return
	}
	m.dirReloads.WithLabelValues(result).Inc()
}

// k1Request observes one request to K1.
func (m *metrics) k1Request(endpoint string, d time.Duration) {
	if m == nil {
		return
	}
	m.k1Duration.WithLabelValues(endpoint).Observe(d.Seconds())
	if endpoint == "jwks" {
		m.jwksRefreshes.Inc()
	}
}

// injectKindLabel is the kind label of injected_pages_total.
func injectKindLabel(k injectKind) string {
	switch k {
	case injectLauncher:
		return injectedLauncher
	case injectNotice:
		return "expiry_notice" // notice.go
	}
	return injectedLoginLink
}
