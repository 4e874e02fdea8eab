// Package redisstore is the store on Redis (one server, a Sentinel-managed
// master or a Cluster), as the guest module
// http.handlers.k1sso.stores.redis: revocations reach every instance at
// once by pub/sub.
package redisstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/k1sso/k1sso/store"
)

func init() {
	caddy.RegisterModule(Backend{})
}

// Backend keeps the store in Redis. Caddyfile: `store redis <url>`. JSON:
// `{"backend": "redis", "url": "..."}`.
type Backend struct {
	// The Redis URL: `redis://[user:password@]host:port/db` for one
	// server, with `?master_name=NAME&addr=host:port...` for Sentinel (the
	// host and each addr are sentinels), with `?addr=host:port...` (or
	// `?cluster=true`) for a Cluster; `rediss://` for TLS (forms in
	// docs/store.md). Placeholders such as `{env.K1SSO_REDIS_URL}` are
	// expanded at provision time, so the adapted JSON keeps the
	// placeholder, not the password. Required.
	URL string `json:"url,omitempty"`

	url string // expanded; holds the password, never logged
}

// CaddyModule returns the Caddy module information.
func (Backend) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  store.ModuleNamespace + ".redis",
		New: func() caddy.Module { return new(Backend) },
	}
}

// UnmarshalCaddyfile reads `redis <url>`.
func (b *Backend) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the store's name
	args := d.RemainingArgs()
	if len(args) != 1 || d.NextBlock(d.Nesting()) {
		return d.Errf("k1sso: store takes `caddy` or `redis <url>`: redis needs exactly one URL")
	}
	b.URL = args[0]
	return nil
}

// Provision expands the URL's placeholders.
func (b *Backend) Provision(caddy.Context) error {
	b.url = caddy.NewReplacer().ReplaceKnown(b.URL, "")
	return nil
}

// Validate checks the expanded URL without connecting. Its errors name
// the store option and never quote the URL.
func (b *Backend) Validate() error {
	if b.url == "" {
		return errors.New("store: redis needs a URL, like redis://127.0.0.1:6379/0" + emptyHint(b.URL))
	}
	_, err := parseURL(b.url)
	return err
}

// PoolKey is a hash of the expanded URL: the password stays out of it.
func (b *Backend) PoolKey() string {
	sum := sha256.Sum256([]byte("k1sso redis\x00" + b.url))
	return "redis:" + hex.EncodeToString(sum[:8])
}

// String names the store in messages, without its passwords.
func (b *Backend) String() string { return "redis " + RedactedURL(b.url) }

// OpenStore creates the client; it connects on first use.
func (b *Backend) OpenStore(_ caddy.Context, opts store.Options) (store.Store, error) {
	return New(b.url, opts)
}

// envPlaceholder finds {env.NAME} placeholders (NAME as Caddy reads it).
var envPlaceholder = regexp.MustCompile(`\{env\.([^{}]+)\}`)

// emptyHint explains why a URL expanded to nothing.
func emptyHint(raw string) string {
	var unset []string
	for _, m := range envPlaceholder.FindAllStringSubmatch(raw, -1) {
		if _, ok := os.LookupEnv(m[1]); !ok {
			unset = append(unset, m[1])
		}
	}
	switch {
	case len(unset) == 1:
		return " (the environment variable " + unset[0] + " is unset)"
	case len(unset) > 1:
		return " (the environment variables " + strings.Join(unset, ", ") + " are unset)"
	case strings.Contains(raw, "{env."):
		return " (the environment variable is set but empty)"
	}
	return ""
}

// Interface guards
var (
	_ store.Backend         = (*Backend)(nil)
	_ caddy.Provisioner     = (*Backend)(nil)
	_ caddy.Validator       = (*Backend)(nil)
	_ caddyfile.Unmarshaler = (*Backend)(nil)
)
