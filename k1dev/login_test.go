package k1dev_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"

	"github.com/k1sso/k1sso/internal/k1devtest"
)

// stepOne GETs startURL, expects the first login form and posts it; it
// returns the response (body read) and its body.
func stepOne(t *testing.T, c *http.Client, startURL, user, company, password string) (*http.Response, string) {
	t.Helper()
	resp, body := fetch(t, c, http.MethodGet, startURL, nil)
	f := k1devtest.FindForm([]byte(body), "username")
	if f == nil {
		t.Fatalf("no login form at %s: %.300s", resp.Request.URL, body)
	}
	for _, name := range []string{"username", "company", "password"} {
		if _, ok := f.Fields()[name]; !ok {
			t.Fatalf("login form has no field %q", name)
		}
	}
	v := f.Fields()
	v.Set("username", user)
	v.Set("company", company)
	v.Set("password", password)
	action, _ := resp.Request.URL.Parse(f.Action())
	return fetch(t, c, http.MethodPost, action.String(), v)
}

// postCode posts code into the code form on page (from resp).
func postCode(t *testing.T, c *http.Client, resp *http.Response, page, code string) (*http.Response, string) {
	t.Helper()
	f := k1devtest.FindForm([]byte(page), "code")
	if f == nil {
		t.Fatalf("no code form at %s (status %d): %.300s", resp.Request.URL, resp.StatusCode, page)
	}
	v := f.Fields()
	v.Set("code", code)
	action, _ := resp.Request.URL.Parse(f.Action())
	return fetch(t, c, http.MethodPost, action.String(), v)
}

// wrongCode returns a 6-digit code that is valid in none of the accepted
// time steps of secret's user.
func wrongCode(t *testing.T, e *env, user string) string {
	t.Helper()
	good, err := e.k1.Server.TOTP(user)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscanf(good, "%d", &n)
	// Neighbouring steps' codes are unrelated; shifting by 500000 collides
	// with one of them with probability ~2e-6.
	return fmt.Sprintf("%06d", (n+500000)%1000000)
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t, true)
	for _, tc := range []struct{ name, user, company, password string }{
		{"password", "alice", "Acme MSP", "nope"},
		{"company", "alice", "Other Co", "alice-pass"},
		{"user", "mallory", "Acme MSP", "alice-pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := k1devtest.NewClient()
			resp, body := stepOne(t, c, e.authURL(newFlow()), tc.user, tc.company, tc.password)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong username, company or password") {
				t.Fatalf("status %d, body %.300s", resp.StatusCode, body)
			}
			if k1devtest.FindForm([]byte(body), "code") != nil {
				t.Fatal("code step offered after a wrong password")
			}
			if loggedIn(t, e, c) {
				t.Fatal("logged in after a wrong password")
			}
			if _, err := e.k1.Login(k1devtest.NewClient(), e.authURL(newFlow()), tc.user, tc.company, tc.password); err == nil {
				t.Fatal("k1devtest.Login succeeded with wrong credentials")
			}
		})
	}
}

func TestWrongCode(t *testing.T) {
	e := newEnv(t, true)
	c := k1devtest.NewClient()
	resp, body := stepOne(t, c, e.authURL(newFlow()), "alice", "Acme MSP", "alice-pass")
	resp, body = postCode(t, c, resp, body, wrongCode(t, e, "alice"))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "Wrong code") {
		t.Fatalf("status %d, body %.300s", resp.StatusCode, body)
	}
	if loggedIn(t, e, c) {
		t.Fatal("logged in after a wrong code")
	}
	// The form is shown again and the right code still works.
	good, _ := e.k1.Server.TOTP("alice")
	resp, _ = postCode(t, c, resp, body, good)
	if !strings.HasPrefix(resp.Request.URL.String(), e.conf.RedirectURL) {
		t.Fatalf("after the right code: at %s", resp.Request.URL)
	}
}

func TestLockoutAfterFiveWrongCodes(t *testing.T) {
	e := newEnv(t, true)
	c := k1devtest.NewClient()
	resp, body := stepOne(t, c, e.authURL(newFlow()), "bob", "Acme MSP", "bob-pass")
	bad := wrongCode(t, e, "bob")
	for i := 1; i <= 5; i++ {
		resp, body = postCode(t, c, resp, body, bad)
		locked := strings.Contains(body, "locked")
		if locked != (i == 5) {
			t.Fatalf("attempt %d: locked=%v, body %.300s", i, locked, body)
		}
	}
	good, _ := e.k1.Server.TOTP("bob")
	resp, body = postCode(t, c, resp, body, good)
	if !strings.Contains(body, "locked") || loggedIn(t, e, c) {
		t.Fatalf("right code while locked: status %d, body %.300s", resp.StatusCode, body)
	}
	// A new login is refused too, with the lock named.
	_, body = stepOne(t, k1devtest.NewClient(), e.authURL(newFlow()), "bob", "Acme MSP", "bob-pass")
	if !strings.Contains(body, "locked") {
		t.Fatalf("new login while locked: %.300s", body)
	}
	// Other users are not affected.
	if _, err := e.k1.Login(k1devtest.NewClient(), e.authURL(newFlow()), "alice", "Acme MSP", "alice-pass"); err != nil {
		t.Fatalf("alice while bob is locked: %v", err)
	}
}

func TestPromptLogin(t *testing.T) {
	e := newEnv(t, true)
	c, first, _ := e.login(t, "alice", "Acme MSP", "alice-pass")

	// Without prompt, the live session answers silently.
	f := newFlow()
	resp, err := c.Get(e.authURL(f))
	if err != nil {
		t.Fatal(err)
	}
	e.exchange(t, e.callback(t, resp, f), f)

	// prompt=login shows the first form again, then the code form.
	f = newFlow()
	resp, body := stepOne(t, c, e.authURL(f, oauth2.SetAuthURLParam("prompt", "login")), "alice", "Acme MSP", "alice-pass")
	good, _ := e.k1.Server.TOTP("alice")
	resp, _ = postCode(t, c, resp, body, good)
	_, idt, _ := e.exchange(t, e.callback(t, resp, f), f)
	if claimsOf(t, idt).AuthTime < claimsOf(t, first).AuthTime {
		t.Error("auth_time went back after prompt=login")
	}
	if claimsOf(t, idt).SID != claimsOf(t, first).SID {
		t.Error("re-login of the same user changed the K1 session id")
	}

	// max_age=0 also asks again.
	status, loc, _ := get(t, noFollow(c), e.authURL(newFlow(), oauth2.SetAuthURLParam("max_age", "0")))
	if status != http.StatusFound {
		t.Fatalf("authorize: status %d", status)
	}
	_, _, body = get(t, c, resolveRef(e.k1.URL, loc))
	if k1devtest.FindForm([]byte(body), "username") == nil {
		t.Fatalf("max_age=0 did not ask for the login: %.300s", body)
	}
}

func TestLoginHintPrefillsUsername(t *testing.T) {
	e := newEnv(t, true)
	_, _, body := get(t, k1devtest.NewClient(), e.authURL(newFlow(), oauth2.SetAuthURLParam("login_hint", "bob@acme.example")))
	f := k1devtest.FindForm([]byte(body), "username")
	if f == nil || f.Fields().Get("username") != "bob" {
		t.Fatalf("username not prefilled: %.300s", body)
	}
}

func TestPromptNone(t *testing.T) {
	e := newEnv(t, true)
	// No session: login_required at the redirect URI.
	f := newFlow()
	resp, err := k1devtest.NewClient().Get(e.authURL(f, oauth2.SetAuthURLParam("prompt", "none")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	q := resp.Request.URL.Query()
	if !strings.HasPrefix(resp.Request.URL.String(), e.conf.RedirectURL) || q.Get("error") != "login_required" || q.Get("state") != f.state {
		t.Fatalf("prompt=none without session ended at %s", resp.Request.URL)
	}

	// With a session: a code, without any form.
	c, first, _ := e.login(t, "carol", "Other Co", "carol-pass")
	f = newFlow()
	resp, err = c.Get(e.authURL(f, oauth2.SetAuthURLParam("prompt", "none")))
	if err != nil {
		t.Fatal(err)
	}
	_, idt, _ := e.exchange(t, e.callback(t, resp, f), f)
	if got := claimsOf(t, idt); got.Sub != "k1|carol" || got.SID != claimsOf(t, first).SID || got.AuthTime != claimsOf(t, first).AuthTime {
		t.Errorf("silent login claims = %+v", got)
	}
}

// TestReloginDuringSilentLogins re-logs a browser in (prompt=login, which
// renews its K1 session's auth time) while the same browser's silent
// logins with max_age read that auth time, under -race: the browser
// session's state is read and written under its own lock only.
func TestReloginDuringSilentLogins(t *testing.T) {
	e := newEnv(t, true)
	c, _, _ := e.login(t, "alice", "Acme MSP", "alice-pass")
	const n = 15
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	wg.Go(func() {
		for range n {
			resp, err := e.k1.Login(c, e.authURL(newFlow(), oauth2.SetAuthURLParam("prompt", "login")), "alice", "Acme MSP", "alice-pass")
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}
	})
	wg.Go(func() {
		for range n {
			resp, err := c.Get(e.authURL(newFlow(), oauth2.SetAuthURLParam("max_age", "3600")))
			if err == nil {
				resp.Body.Close()
				if !strings.HasPrefix(resp.Request.URL.String(), e.conf.RedirectURL) || resp.Request.URL.Query().Get("code") == "" {
					err = fmt.Errorf("silent login ended at %s", resp.Request.URL)
				}
			}
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
