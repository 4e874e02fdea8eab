package bms

import (
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
)

func sessionCookie(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie {
			return c
		}
	}
	return nil
}

func TestLoginPage(t *testing.T) {
	ts, c, _ := newClient(t)
	resp, body := get(t, c, ts.URL+"/login")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{"Kaseya BMS", `id="login-box"`, `name="username"`, `name="password"`, "</body>", `href="/static/bms.css"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
}

func TestNativeLogin(t *testing.T) {
	tests := []struct {
		user, pass, tenant string
	}{
		{"alice", "alice-bms", "acme"},
		{"bob", "bob-bms", "acme"},
		{"alice.labs", "alice.labs-bms", "acme-labs"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			ts, c, _ := newClient(t)
			resp, _ := login(t, c, ts.URL, tt.user, tt.pass)
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
				t.Fatalf("login: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			ck := sessionCookie(resp)
			if ck == nil || ck.Value == "" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
				t.Fatalf("BMSSESSION cookie: %+v", ck)
			}
			resp, body := get(t, c, ts.URL+"/dashboard")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("dashboard: status %d", resp.StatusCode)
			}
			for _, want := range []string{
				`<span id="user-name">` + tt.user + `</span>`,
				`<a id="logout" href="/logout">`,
				`data-tenant="` + tt.tenant + `"`,
				`<dd id="auth-mode">native session</dd>`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("dashboard lacks %q", want)
				}
			}
		})
	}
}

func TestNativeLoginWrong(t *testing.T) {
	tests := []struct{ name, user, pass string }{
		{"wrong password", "alice", "alice-pass"},
		{"empty password", "alice", ""},
		{"unknown user", "mallory", "mallory-bms"},
		{"other user's password", "bob", "alice-bms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, c, s := newClient(t)
			resp, body := login(t, c, ts.URL, tt.user, tt.pass)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if sessionCookie(resp) != nil {
				t.Error("a failed login set BMSSESSION")
			}
			if !strings.Contains(body, `id="login-error"`) || !strings.Contains(body, `id="login-box"`) {
				t.Error("the login page with an error was not shown again")
			}
			if s.sessions.len() != 0 {
				t.Error("a failed login created a session")
			}
			if resp, _ := get(t, c, ts.URL+"/dashboard"); resp.StatusCode != http.StatusFound {
				t.Errorf("dashboard after a failed login: status %d", resp.StatusCode)
			}
		})
	}
}

func TestPagesNeedLogin(t *testing.T) {
	ts, c, _ := newClient(t)
	for _, path := range []string{"/", "/dashboard", "/tickets", "/admin/integrations"} {
		resp, _ := get(t, c, ts.URL+path)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
			t.Errorf("%s: status %d, Location %q; want 302 to /login", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A forged or stale session cookie is no login either.
	resp, _ := get(t, c, ts.URL+"/dashboard", "Cookie", SessionCookie+"=forged")
	if resp.StatusCode != http.StatusFound {
		t.Errorf("forged BMSSESSION: status %d", resp.StatusCode)
	}
	// Half of the trusted headers is no login.
	resp, _ = get(t, c, ts.URL+"/dashboard", "X-BMS-User", "alice")
	if resp.StatusCode != http.StatusFound {
		t.Errorf("X-BMS-User alone: status %d", resp.StatusCode)
	}
	// The public parts need no login.
	for _, path := range []string{"/login", "/static/bms.css", "/api/whoami-headers"} {
		if resp, _ := get(t, c, ts.URL+path); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", path, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, ts.URL+"/static/"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/static/: status %d, want 404 (no listing)", resp.StatusCode)
	}
}

func TestRootRedirect(t *testing.T) {
	ts, c, _ := newClient(t)
	login(t, c, ts.URL, "bob", "bob-bms")
	resp, _ := get(t, c, ts.URL+"/")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/dashboard" {
		t.Errorf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestHeaderTrust(t *testing.T) {
	ts, c, _ := newClient(t)
	// Log in natively as bob; the headers must win over his session.
	login(t, c, ts.URL, "bob", "bob-bms")
	resp, body := get(t, c, ts.URL+"/dashboard",
		"X-BMS-User", "alice.labs", "X-BMS-Tenant", "acme-labs", "X-BMS-Roles", "admin")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, want := range []string{
		`<span id="user-name">alice.labs</span>`,
		`data-tenant="acme-labs"`,
		"Acme Labs",
		`<dd id="auth-mode">headers</dd>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	// Roles come from X-BMS-Roles.
	resp, _ = get(t, c, ts.URL+"/admin/integrations", "X-BMS-User", "alice", "X-BMS-Tenant", "acme", "X-BMS-Roles", "admin")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("admin with X-BMS-Roles admin: status %d", resp.StatusCode)
	}
	resp, _ = get(t, c, ts.URL+"/admin/integrations", "X-BMS-User", "alice", "X-BMS-Tenant", "acme")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("admin without roles: status %d, want 403", resp.StatusCode)
	}
}

func TestHeaderTable(t *testing.T) {
	ts, c, _ := newClient(t)
	assertion := "eyJhbGciOiJFUzI1NiJ9." + strings.Repeat("A", 200) + ".sig"
	resp, body := get(t, c, ts.URL+"/dashboard",
		"X-K1-Email", "alice@acme.example",
		"X-K1-Subject", "k1|alice",
		"X-BMS-User", "alice",
		"X-BMS-Tenant", "acme",
		"X-BMS-Roles", "admin",
		"X-K1-Assertion", assertion,
	)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if !strings.Contains(body, `<table id="identity-headers">`) {
		t.Fatal("no identity-headers table")
	}
	for _, want := range []string{
		`<tr data-header="X-K1-Email"><td>X-K1-Email</td><td class="value" data-value="alice@acme.example">alice@acme.example</td></tr>`,
		`<tr data-header="X-K1-Subject"><td>X-K1-Subject</td><td class="value" data-value="k1|alice">k1|alice</td></tr>`,
		`<tr data-header="X-BMS-User"><td>X-BMS-User</td><td class="value" data-value="alice">alice</td></tr>`,
		`<tr data-header="X-BMS-Tenant"><td>X-BMS-Tenant</td><td class="value" data-value="acme">acme</td></tr>`,
		`<tr data-header="X-BMS-Roles"><td>X-BMS-Roles</td><td class="value" data-value="admin">admin</td></tr>`,
		`<tr data-header="X-K1-Assertion"><td>X-K1-Assertion</td><td class="value" data-value="` + assertion + `">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("table lacks %s", want)
		}
	}
	if strings.Contains(body, ">"+assertion+"<") {
		t.Error("the assertion is shown in full, want truncated")
	}
	// A native session shows an empty table.
	login(t, c, ts.URL, "bob", "bob-bms")
	_, body = get(t, c, ts.URL+"/dashboard")
	if strings.Contains(body, "<tr data-header=") {
		t.Error("native session: table has header rows")
	}
}

func TestWhoamiHeaders(t *testing.T) {
	ts, c, _ := newClient(t)
	read := func(headers ...string) WhoamiHeaders {
		t.Helper()
		resp, body := get(t, c, ts.URL+"/api/whoami-headers", headers...)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var w WhoamiHeaders
		if err := json.Unmarshal([]byte(body), &w); err != nil {
			t.Fatal(err)
		}
		return w
	}
	if w := read(); w.Auth != AuthNone || len(w.Headers) != 0 || len(w.Raw) != 0 {
		t.Errorf("anonymous: %+v", w)
	}
	w := read("X-BMS-User", "alice", "X-BMS-Tenant", "acme", "X-K1-Email", "alice@acme.example", "X_BMS_User", "mallory", "Accept", "*/*")
	if w.Auth != AuthHeaders || w.User != "alice" || w.Tenant != "acme" {
		t.Errorf("headers: %+v", w)
	}
	if w.Headers["X-BMS-User"] != "alice" || w.Headers["X-K1-Email"] != "alice@acme.example" || len(w.Headers) != 3 {
		t.Errorf("headers map: %v", w.Headers)
	}
	var sawUnderscore bool
	for _, l := range w.Raw {
		if strings.Contains(l.Name, "_") && l.Value == "mallory" {
			sawUnderscore = true
		}
	}
	if !sawUnderscore || len(w.Raw) != 4 {
		t.Errorf("raw lines: %+v", w.Raw)
	}
	login(t, c, ts.URL, "bob", "bob-bms")
	if w := read(); w.Auth != AuthNative || w.User != "bob" || len(w.Cookies) != 1 || w.Cookies[0] != SessionCookie {
		t.Errorf("native: %+v", w)
	}
}

func TestLogout(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			ts, c, s := newClient(t)
			resp, _ := login(t, c, ts.URL, "alice", "alice-bms")
			old := sessionCookie(resp)
			if s.sessions.len() != 1 {
				t.Fatalf("%d sessions after login", s.sessions.len())
			}
			req, _ := http.NewRequest(method, ts.URL+"/logout", nil)
			resp, _ = do(t, c, req)
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login" {
				t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if ck := sessionCookie(resp); ck == nil || ck.MaxAge >= 0 || ck.Value != "" {
				t.Errorf("BMSSESSION not expired: %+v", ck)
			}
			if s.sessions.len() != 0 {
				t.Error("session still in memory")
			}
			if resp, _ := get(t, c, ts.URL+"/dashboard"); resp.StatusCode != http.StatusFound {
				t.Errorf("dashboard after logout: status %d", resp.StatusCode)
			}
			// Replaying the old cookie does not bring the session back.
			plain := &http.Client{CheckRedirect: c.CheckRedirect}
			if resp, _ := get(t, plain, ts.URL+"/dashboard", "Cookie", old.Name+"="+old.Value); resp.StatusCode != http.StatusFound {
				t.Errorf("old cookie after logout: status %d", resp.StatusCode)
			}
		})
	}
}

func TestPages(t *testing.T) {
	ts, c, _ := newClient(t)
	login(t, c, ts.URL, "alice", "alice-bms")
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/tickets", 200, []string{`<table id="tickets">`, "T20240308.0001", `<span id="user-name">alice</span>`}},
		{"/admin/integrations", 200, []string{"Admin &gt; Integrations &gt; KaseyaOne", `href="/.k1sso/admin"`}},
		{"/nope", 404, []string{"Page not found"}},
	}
	for _, tt := range tests {
		resp, body := get(t, c, ts.URL+tt.path)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.status)
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s lacks %q", tt.path, w)
			}
		}
	}
	resp, body := get(t, c, ts.URL+"/static/bms.css")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(body, "#login-box") {
		t.Errorf("bms.css: Content-Type %q", resp.Header.Get("Content-Type"))
	}
	// bob is no admin.
	c.Jar, _ = cookiejar.New(nil)
	login(t, c, ts.URL, "bob", "bob-bms")
	if resp, _ := get(t, c, ts.URL+"/admin/integrations"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob on /admin/integrations: status %d, want 403", resp.StatusCode)
	}
}
