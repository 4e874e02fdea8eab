package k1dev

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"
)

// Option changes how New builds a Server.
type Option func(*Server)

// WithRootCAs makes the Server's own calls to clients (back-channel logout
// tokens) trust the CAs in pool instead of the system's roots. A site on
// Caddy's `tls internal` needs its local root here (see LoadCAFile).
// Default: the system's roots.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(s *Server) {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		s.http = &http.Client{Timeout: deliveryTimeout, Transport: t}
	}
}

// LoadCAFile returns the system's roots plus the PEM certificates in path,
// e.g. Caddy's local root (caddy/pki/authorities/local/root.crt under
// Caddy's data folder). A file without a certificate is an error.
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("reading CA file %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// deliveryTimeout bounds one back-channel logout delivery.
const deliveryTimeout = 2 * time.Second
