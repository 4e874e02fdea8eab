package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"github.com/k1sso/k1sso/internal/k1devtest"
	"github.com/k1sso/k1sso/k1dev"
)

// newClient is a browser without JavaScript: a cookie jar of its own and
// redirects followed.
func newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// get fetches a page and reads its body.
func get(c *http.Client, u string) (*http.Response, []byte, error) {
	return read(c.Get(u))
}

func read(resp *http.Response, err error) (*http.Response, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

// login drives k1dev's two forms (username, company, password; then the
// current TOTP code) starting at startURL, a proxy's login address, and
// follows the redirects back. It returns the final page's status and body.
func login(srv *k1dev.Server, c *http.Client, startURL, user, company, pass string) (int, []byte, error) {
	resp, body, err := get(c, startURL)
	if err != nil {
		return 0, nil, err
	}
	f := k1devtest.FindForm(body, "username")
	if f == nil {
		return 0, nil, fmt.Errorf("no K1 login form at %s (status %d)", resp.Request.URL, resp.StatusCode)
	}
	fields := f.Fields()
	fields.Set("username", user)
	fields.Set("company", company)
	fields.Set("password", pass)
	resp, body, err = read(c.PostForm(resolve(resp, f.Action()), fields))
	if err != nil {
		return 0, nil, err
	}
	f = k1devtest.FindForm(body, "code")
	if f == nil {
		return 0, nil, fmt.Errorf("password step failed (status %d)", resp.StatusCode)
	}
	code, err := srv.TOTP(user)
	if err != nil {
		return 0, nil, err
	}
	fields = f.Fields()
	fields.Set("code", code)
	resp, body, err = read(c.PostForm(resolve(resp, f.Action()), fields))
	if err != nil {
		return 0, nil, err
	}
	if k1devtest.FindForm(body, "code") != nil {
		return 0, nil, errors.New("code step failed")
	}
	return resp.StatusCode, body, nil
}

func resolve(resp *http.Response, action string) string {
	u, err := resp.Request.URL.Parse(action)
	if err != nil {
		return action
	}
	return u.String()
}

// cookieHeader joins the jar's cookies for base whose names keep(name)
// accepts into one Cookie header value.
func cookieHeader(c *http.Client, base string, keep func(string) bool) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, ck := range c.Jar.Cookies(u) {
		if keep(ck.Name) {
			parts = append(parts, ck.Name+"="+ck.Value)
		}
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("no session cookie for %s after login", base)
	}
	return strings.Join(parts, "; "), nil
}

// checkAccess makes sure cookie opens base/ (200 with the upstream's body)
// and that the same request without it does not.
func checkAccess(base, cookie string) error {
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	try := func(withCookie bool) (int, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		if withCookie {
			req.Header.Set("Cookie", cookie)
		}
		resp, body, err := read(c.Do(req))
		if err != nil {
			return 0, nil, err
		}
		return resp.StatusCode, body, nil
	}
	st, body, err := try(true)
	if err != nil {
		return err
	}
	if st != http.StatusOK || !strings.HasPrefix(string(body), upstreamMarker) {
		return fmt.Errorf("%s with the session cookie: status %d, not the upstream's page", base, st)
	}
	st, body, err = try(false)
	if err != nil {
		return err
	}
	if st == http.StatusOK && strings.HasPrefix(string(body), upstreamMarker) {
		return fmt.Errorf("%s lets a request without a session through: the bench would measure nothing", base)
	}
	return nil
}
