package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/k1sso/k1sso/store"
)

// revocationCount is caddy_k1sso_revocations_total{kind} as m's collectors
// report it to a registry (0 when there is no such series).
func revocationCount(t *testing.T, m *metrics, kind string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range m.collectors() {
		reg.MustRegister(c)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_k1sso_revocations_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == kind {
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// Each revocation counts once under the kind of what it names: a logout
// of one session as id, K1's logouts as sid or sub. A sid or sub ends any
// number of sessions, held in cookies no instance can count, so the
// metric counts revocations, not sessions.
func TestRevocationsCountedByKind(t *testing.T) {
	h := newTestHandler(t, nil)
	h.metrics = newMetrics()
	ctx := context.Background()
	exp := time.Now().Add(time.Hour).Unix()
	h.revokeSession(ctx, testSession("bob", "acme"))
	h.revokeK1Until(ctx, "sid-1", "", 0, exp)
	h.revokeK1Until(ctx, "", "k1|bob", time.Now().Unix(), exp)
	h.revokeK1Until(ctx, "", "k1|alice", time.Now().Unix(), exp)
	for kind, want := range map[string]float64{store.KindID: 1, store.KindSID: 1, store.KindSub: 2, store.KindEmail: 0} {
		if got := revocationCount(t, h.metrics, kind); got != want {
			t.Errorf(`revocations_total{kind=%q} = %v, want %v`, kind, got, want)
		}
	}
}

// An operator's revocation through the admin API counts once, however many
// sites (pooled states) record it.
func TestAdminRevocationCountedOnce(t *testing.T) {
	for i, key := range []string{"test-admin-revocation-a", "test-admin-revocation-b"} {
		h := newTestHandler(t, nil)
		if i == 1 {
			// Another site's state, with a session of bob cached.
			sess := testSession("bob", "acme")
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Cookie", sessionCookies(t, h, sess))
			if h.shared.lookupSession(req, false, time.Now()) == nil {
				t.Fatal("bob's session is not cached")
			}
		}
		if _, _, err := sharedPool.LoadOrNew(key, func() (caddy.Destructor, error) { return h.shared, nil }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = sharedPool.Delete(key) })
	}
	before := revocationCount(t, k1ssoMetrics, store.KindEmail)
	a := &adminAPI{logger: zap.NewNop()}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/k1sso/revoke", strings.NewReader(`{"email":"bob@acme.example"}`))
	if err := a.handleRevoke(rec, req); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Body.String(), `"cached_sessions":1`) {
		t.Errorf("revoke answer %s, want bob's one cached session", rec.Body.String())
	}
	if got := revocationCount(t, k1ssoMetrics, store.KindEmail) - before; got != 1 {
		t.Errorf(`one revocation by email over two sites: revocations_total{kind="email"} went up by %v, want 1`, got)
	}
}
