package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The https runs give Caddy a root CA made for the test (`pki` in the
// Caddyfile), so the test knows what to trust without reading Caddy's data
// folder. Go clients (k1dev's back-channel logout, waitForSite) trust that
// root and verify the whole chain. Chromium has no flag that adds a trust
// anchor, and a pin of the root's key does not help: Chromium matches
// --ignore-certificate-errors-spki-list only against the certificates the
// server sends (leaf and intermediate), and Caddy never sends its root.
// So Chromium gets the pin of Caddy's intermediate, read from a handshake
// that Go verified against the root: it accepts the chains of Caddy's local
// CA only, where --ignore-certificate-errors would accept any certificate.

// testCA is a root CA in files Caddy's `pki` reads.
type testCA struct {
	certFile, keyFile string
	pool              *x509.CertPool
}

// newTestCA makes a P-256 root valid for 30 days (Caddy wants the root to
// outlive its 7-day intermediate) and writes it into dir.
func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "k1sso e2e root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{certFile: filepath.Join(dir, "root.crt"), keyFile: filepath.Join(dir, "root.key"), pool: x509.NewCertPool()}
	if err := os.WriteFile(ca.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca.pool.AddCert(cert)
	return ca
}

// waitForSite waits (up to 20 s) until the site on 127.0.0.1:port answers
// a TLS handshake for proxyHost with a chain that verifies against the root
// and offers h2, and returns the base64 SHA-256 of its intermediate's
// public key, Chromium's --ignore-certificate-errors-spki-list format.
func (ca *testCA) waitForSite(t *testing.T, port int) string {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := &tls.Config{ServerName: proxyHost, RootCAs: ca.pool, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: cfg}
		conn, err := d.Dial("tcp", addr)
		if err == nil {
			st := conn.(*tls.Conn).ConnectionState()
			conn.Close()
			if st.NegotiatedProtocol != "h2" {
				t.Fatalf("e2e: the https site negotiated %q, want h2", st.NegotiatedProtocol)
			}
			chain := st.VerifiedChains[0]
			if len(chain) < 3 {
				t.Fatalf("e2e: the https site's chain has %d certificates, want leaf, intermediate and root", len(chain))
			}
			sum := sha256.Sum256(chain[1].RawSubjectPublicKeyInfo)
			return base64.StdEncoding.EncodeToString(sum[:])
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: no verified TLS handshake with %s for %s within 20 s: %v", addr, proxyHost, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// traffic is what the browser sent to and received from every origin,
// recorded from the DevTools network events.
type traffic struct {
	origin string // the proxy, https://localhost:port

	mu        sync.Mutex
	requests  []string // every URL the browser requested
	protocols []string // "<protocol> <url>" of every response from the proxy's host
	toProxy   int      // redirects that landed on the proxy's host
}

// record is a chromedp listener; it only appends, as listeners must.
func (tr *traffic) record(ev any) {
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.Request == nil {
			return
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.requests = append(tr.requests, e.Request.URL)
		if e.RedirectResponse != nil {
			if tr.onProxyHost(e.RedirectResponse.URL) {
				tr.protocols = append(tr.protocols, e.RedirectResponse.Protocol+" "+e.RedirectResponse.URL)
			}
			if tr.onProxyHost(e.Request.URL) {
				tr.toProxy++
			}
		}
	case *network.EventResponseReceived:
		if e.Response == nil || !tr.onProxyHost(e.Response.URL) {
			return
		}
		tr.mu.Lock()
		tr.protocols = append(tr.protocols, e.Response.Protocol+" "+e.Response.URL)
		tr.mu.Unlock()
	}
}

// onProxyHost reports whether raw is on the proxy's host and port, on any
// scheme.
func (tr *traffic) onProxyHost(raw string) bool {
	u, err := url.Parse(raw)
	p, _ := url.Parse(tr.origin)
	return err == nil && p != nil && u.Host == p.Host
}

// withoutQuery is raw up to its path: the query may carry a code or a state.
func withoutQuery(raw string) string {
	before, _, _ := strings.Cut(raw, "?")
	return before
}

// checkHTTPS checks, when an https flow ends, what only https shows: every
// request to the proxy's host was https (so every redirect to it stayed
// https), every URL of the proxy's host carried in a query (redirect_uri,
// post_logout_redirect_uri, target_link_uri, ...) is https, and every
// response of the proxy came over HTTP/2. It runs after a failed step too:
// a hop to http explains a step that waited in vain.
func (w *world) checkHTTPS() {
	t := w.t
	failed := t.Failed()
	tr := &w.traffic
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, raw := range tr.requests {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		if tr.onProxyHost(raw) && u.Scheme != "https" {
			t.Errorf("the browser requested %s: not https", withoutQuery(raw))
		}
		for name, values := range u.Query() {
			for _, v := range values {
				if tr.onProxyHost(v) && !strings.HasPrefix(v, tr.origin+"/") {
					t.Errorf("a request to %s carries %s=%s: not on %s", withoutQuery(raw), name, withoutQuery(v), tr.origin)
				}
			}
		}
	}
	for _, p := range tr.protocols {
		if !strings.HasPrefix(p, "h2 ") {
			t.Errorf("the proxy answered over %q, want h2", withoutQuery(p))
		}
	}
	t.Logf("https: %d requests, %d responses of the proxy, %d redirects to it", len(tr.requests), len(tr.protocols), tr.toProxy)
	if !failed && (len(tr.protocols) == 0 || tr.toProxy == 0) {
		t.Errorf("saw %d responses of the proxy and %d redirects to it: the network events were not recorded", len(tr.protocols), tr.toProxy)
	}
}

// proxyCookies reads the proxy's cookies from Chromium's cookie store.
func (w *world) proxyCookies(ctx context.Context) ([]*network.Cookie, error) {
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{w.proxy + "/"}})
	if err != nil {
		return nil, fmt.Errorf("reading cookies: %w", err)
	}
	return res.Cookies, nil
}

// sessionCookieName is k1sso's session cookie on the world's scheme.
func (w *world) sessionCookieName() string {
	if w.https {
		return "__Host-k1sso"
	}
	return "k1sso"
}

// expectSessionCookie checks, in Chromium's cookie store, that the browser
// holds k1sso's session cookie with its attributes: HttpOnly, SameSite=Lax,
// Path=/, host-only; on https named __Host-k1sso and Secure, and no k1sso
// cookie without the prefix or without Secure.
func (w *world) expectSessionCookie() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		cookies, err := w.proxyCookies(ctx)
		if err != nil {
			return err
		}
		want := w.sessionCookieName()
		var session *network.Cookie
		var names []string
		for _, c := range cookies {
			names = append(names, c.Name)
			if c.Name == want {
				session = c
			}
			base := strings.TrimPrefix(c.Name, "__Host-")
			if w.https && strings.HasPrefix(base, "k1sso") && (base == c.Name || !c.Secure || c.Path != "/") {
				return fmt.Errorf("cookie %s on https: want the __Host- prefix, Secure and Path=/ (secure=%v path=%s)", c.Name, c.Secure, c.Path)
			}
		}
		if session == nil {
			return fmt.Errorf("no %s cookie in the browser; it holds %v", want, names)
		}
		switch {
		case !session.HTTPOnly:
			return fmt.Errorf("%s is not HttpOnly", want)
		case session.SameSite != network.CookieSameSiteLax:
			return fmt.Errorf("%s has SameSite=%q, want Lax", want, session.SameSite)
		case session.Path != "/" || strings.HasPrefix(session.Domain, ".") || session.Domain != proxyHost:
			return fmt.Errorf("%s has Path=%s Domain=%s, want Path=/ on %s only", want, session.Path, session.Domain, proxyHost)
		case w.https && (!session.Secure || session.SourceScheme != network.CookieSourceSchemeSecure):
			return fmt.Errorf("%s is not Secure (secure=%v, set over %s)", want, session.Secure, session.SourceScheme)
		}
		return nil
	})
}

// expectNoSessionCookie checks that the browser no longer holds k1sso's
// session cookie (a logout expired it; on https the expiry itself must be
// Secure and Path=/ for Chromium to accept it for a __Host- cookie).
func (w *world) expectNoSessionCookie() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		cookies, err := w.proxyCookies(ctx)
		if err != nil {
			return err
		}
		for _, c := range cookies {
			if c.Name == w.sessionCookieName() {
				return fmt.Errorf("the browser still holds %s after the logout", c.Name)
			}
		}
		return nil
	})
}
