package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/k1sso/k1sso/store"
)

// The same revocation repeated while the store is down is pending once.
func TestPendingRevocationsDeduplicated(t *testing.T) {
	var p []store.Revocation
	for i := 0; i < 100; i++ {
		p = addPending(p, store.Revocation{Kind: store.KindSID, Value: "sid-1", Expires: int64(1000 + i)})
	}
	p = addPending(p, store.Revocation{Kind: store.KindSID, Value: "sid-2", Expires: 5})
	if len(p) != 2 || p[0].Expires != 1099 {
		t.Fatalf("pending: %+v", p)
	}
}

// An operator's revocation through the admin API is judged by the clock of
// the sessions it ends: on a state whose clock runs an hour ahead of the
// wall clock, a session signed in just now is revoked all the same.
func TestAdminRevocationOnTheStateClock(t *testing.T) {
	clock := func() time.Time { return time.Now().Add(time.Hour) }
	h := newTestHandlerAt(t, clock, nil)
	key := "test-admin-revocation-clock"
	if _, _, err := sharedPool.LoadOrNew(key, func() (caddy.Destructor, error) { return h.shared, nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = sharedPool.Delete(key) })
	sess := testSession("bob", "acme")
	now := clock()
	sess.AuthTime, sess.Issued, sess.Expires = now.Unix(), now.Unix(), now.Add(8*time.Hour).Unix()
	cookie := sessionCookies(t, h, sess)
	serve := func() string {
		r := tableRequest("XHR", "/dashboard")
		r.Header.Set("Cookie", cookie)
		next := &recordingNext{}
		if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
			t.Fatal(err)
		}
		if next.got == nil {
			return ""
		}
		return next.got.Header.Get("X-Bms-User")
	}
	if got := serve(); got != "bob" {
		t.Fatalf("before the revocation the upstream got X-Bms-User %q, want bob", got)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/k1sso/revoke", strings.NewReader(`{"email":"bob@acme.example"}`))
	if err := (&adminAPI{logger: zap.NewNop()}).handleRevoke(rec, req); err != nil {
		t.Fatal(err)
	}
	if got := serve(); got != "" {
		t.Fatalf("after the admin API revoked bob@acme.example the upstream still got X-Bms-User %q", got)
	}
}
