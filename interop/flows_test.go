package interop

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/testenv"
)

// The BMS account every test user's email is matched to.
const (
	bmsUser   = "interop.user"
	bmsTenant = "interop"
)

// newBrowser is an HTTP client with a cookie jar that follows redirects,
// like a browser without JavaScript.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// proxy is a Caddy site with k1sso in front of a recording upstream.
type proxy struct {
	*testenv.Proxy
	up *testenv.Upstream
}

// startProxy runs Caddy with k1sso for the OP at issuer (spelt exactly as
// given), a users file that maps email to bmsUser, and BMS's logout at
// /logout. port is the site's port (0: a free one).
func startProxy(t *testing.T, issuer, email string, port int) *proxy {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users.csv")
	csv := "email,bms_user,tenant,tenant_name,roles\n" + email + "," + bmsUser + "," + bmsTenant + ",Interop,admin\n"
	if err := os.WriteFile(users, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	up := testenv.NewUpstream(t)
	px := testenv.StartCaddy(t, testenv.Site{
		Port: port, K1: issuer, Upstream: up.URL, Users: users,
		Options: []string{"logout_path /logout"},
	})
	return &proxy{Proxy: px, up: up}
}

// publishedIssuer is the issuer of the OP's discovery document at base.
func publishedIssuer(t *testing.T, discovery string) string {
	t.Helper()
	resp, err := http.Get(discovery)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.Issuer == "" {
		t.Fatalf("discovery %s: status %d, no issuer (%v)", discovery, resp.StatusCode, err)
	}
	return d.Issuer
}

// submitForm finds the first form of the page in resp (body read here)
// that has a field named field, fills values over its hidden inputs and
// submits it with c (following redirects).
func submitForm(t *testing.T, c *http.Client, resp *http.Response, field string, values url.Values) *http.Response {
	t.Helper()
	body := readBody(t, resp)
	forms := regexp.MustCompile(`(?is)<form[^>]*>.*?</form>`).FindAllString(body, -1)
	for _, f := range forms {
		if !strings.Contains(f, `name="`+field+`"`) {
			continue
		}
		action := attr(regexp.MustCompile(`(?i)<form[^>]*>`).FindString(f), "action")
		form := url.Values{}
		for _, in := range regexp.MustCompile(`(?i)<input[^>]*>`).FindAllString(f, -1) {
			if strings.EqualFold(attr(in, "type"), "hidden") {
				form.Set(attr(in, "name"), attr(in, "value"))
			}
		}
		for k, v := range values {
			form[k] = v
		}
		target, err := resp.Request.URL.Parse(action)
		if err != nil {
			t.Fatal(err)
		}
		next, err := c.PostForm(target.String(), form)
		if err != nil {
			t.Fatalf("submitting the form at %s: %v", resp.Request.URL, err)
		}
		return next
	}
	t.Fatalf("no form with %q at %s (status %d): %.500s", field, resp.Request.URL, resp.StatusCode, body)
	return nil
}

// attr is the value of HTML attribute name in tag ("" if absent).
func attr(tag, name string) string {
	m := regexp.MustCompile(`(?i)\s` + name + `="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp
}

// checkIdentity checks that resp is the upstream's answer to path with the
// identity of email.
func checkIdentity(t *testing.T, resp *http.Response, path, email, sub string) {
	t.Helper()
	s := testenv.DecodeSeen(t, resp)
	if s.Path != path {
		t.Errorf("upstream got %s, want %s", s.Path, path)
	}
	want := map[string]string{"X-Bms-User": bmsUser, "X-Bms-Tenant": bmsTenant, "X-K1-Email": email, "X-K1-Subject": sub}
	for h, v := range want {
		if got := s.Header.Get(h); got != v {
			t.Errorf("upstream got %s %q, want %q", h, got, v)
		}
	}
	if s.Header.Get("X-K1-Assertion") == "" {
		t.Error("upstream got no X-K1-Assertion")
	}
}

// whoami is the proxy's /.k1sso/whoami status for the cookies of c.
func whoami(t *testing.T, c *http.Client, px *proxy) (int, string) {
	t.Helper()
	resp := get(t, c, px.URL+"/.k1sso/whoami")
	body := readBody(t, resp)
	var w struct {
		Email string `json:"email"`
	}
	_ = json.Unmarshal([]byte(body), &w)
	return resp.StatusCode, w.Email
}

// waitSignedOut waits (up to 10 s) until the proxy no longer knows the
// session of c's cookies.
func waitSignedOut(t *testing.T, c *http.Client, px *proxy) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, email := whoami(t, c, px)
		if status == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy session still valid after 10s: whoami %d %s", status, email)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hostOf is the host:port of u.
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

func describe(resp *http.Response) string {
	return fmt.Sprintf("%d %s", resp.StatusCode, resp.Request.URL)
}

// readSeen is the upstream's record of the request resp answers.
func readSeen(t *testing.T, resp *http.Response) testenv.Seen {
	t.Helper()
	return testenv.DecodeSeen(t, resp)
}
