package caddymodule_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// TestLogsCarryNoSID: a K1 session ID is all front-channel logout needs,
// so whoever reads the logs could end sessions with it. Login, logout and
// front-channel logout log a short hash of it instead, and no log line
// carries the sid, a cookie or the state.
func TestLogsCarryNoSID(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	h := &hostile{op: hostileop.Start(t), up: testenv.NewUpstream(t)}
	h.s = testenv.Site{K1: h.op.URL, Upstream: h.up.URL, Users: testenv.DemoUsers(t)}
	cf := h.s.Caddyfile(t)
	cf = regexp.MustCompile(`(?s)log \{.*?\n\t\}`).ReplaceAllString(cf, "log {\n\t\tlevel INFO\n\t\toutput file "+logFile+"\n\t\tformat json\n\t}")
	if err := testenv.LoadCaddyfile(cf); err != nil {
		t.Fatalf("loading Caddy config: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	h.px = &testenv.Proxy{URL: "http://127.0.0.1:" + strconv.Itoa(h.s.Port), Port: h.s.Port}
	testenv.WaitHTTP(t, h.px.URL+"/.k1sso/jwks.json")

	var secrets []string
	for i, sid := range []string{"k1-sid-logout-0123456789", "k1-sid-frontchannel-0123456789"} {
		h.op.Set(hostileop.Behavior{Claims: set("sid", sid)})
		c, resp := h.login(t)
		h.accepted(t, resp)
		secrets = append(secrets, sid, h.sessionCookie(c))
		if i == 0 {
			// Logout through the confirmation form.
			b := body(t, get(t, c, h.px.URL+"/.k1sso/logout"))
			m := csrfRE.FindStringSubmatch(b)
			if m == nil {
				t.Fatalf("no logout form: %.300s", b)
			}
			resp, err := testenv.NoRedirect(c.Jar).PostForm(h.px.URL+"/.k1sso/logout", url.Values{"csrf_token": {m[1]}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout: %d", resp.StatusCode)
			}
			continue
		}
		resp = get(t, http.DefaultClient, h.px.URL+"/.k1sso/frontchannel-logout?"+url.Values{"iss": {h.op.URL}, "sid": {sid}}.Encode())
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("front-channel logout: %d", resp.StatusCode)
		}
	}

	hashOf := func(sid string) string { s := sha256.Sum256([]byte(sid)); return hex.EncodeToString(s[:8]) }
	var logs string
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(logFile)
		logs = string(b)
		if strings.Contains(logs, `"front-channel logout"`) {
			break
		}
	}
	for _, tc := range []struct{ msg, sid string }{
		{`"msg":"login"`, "k1-sid-logout-0123456789"},
		{`"msg":"logout"`, "k1-sid-logout-0123456789"},
		{`"msg":"login"`, "k1-sid-frontchannel-0123456789"},
		{`"msg":"front-channel logout"`, "k1-sid-frontchannel-0123456789"},
	} {
		found := false
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, tc.msg) && strings.Contains(line, `"k1_sid_hash":"`+hashOf(tc.sid)+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s line with the hash of %s", tc.msg, tc.sid)
		}
	}
	if strings.Contains(logs, `"k1_sid"`) {
		t.Error("the log has a k1_sid field")
	}
	for i, s := range secrets {
		if s == "" || strings.Contains(logs, s) {
			t.Errorf("the log carries secret %d (even: a sid, odd: a session cookie)", i)
		}
	}
}
