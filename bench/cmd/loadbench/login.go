package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// newClient is a browser without JavaScript: a cookie jar of its own and
// redirects followed.
func newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// read reads a response's body (at most 1 MiB) and closes it.
func read(resp *http.Response, err error) (*http.Response, []byte, error) {
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

// login logs bob in with c through k1dev's two forms, starting at
// startURL, a proxy's login address (k1devtest's Login: the same forms the
// tests drive), and returns the final page's status and body.
func (b *bench) login(c *http.Client, startURL string) (int, []byte, error) {
	resp, body, err := read(b.k1.Login(c, startURL, "bob", "Acme MSP", "bob-pass"))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
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
