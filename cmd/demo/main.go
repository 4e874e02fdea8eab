// Command demo starts the k1sso demo world in one process:
//
//   - k1dev, the development KaseyaOne, on 127.0.0.1:9000 (issuer
//     http://127.0.0.1:9000);
//   - the demo BMS (examples/bms) on 127.0.0.1:8081;
//   - Caddy with the k1sso module on :8080, configured from the root
//     Caddyfile.
//
// It prints what to open, the demo users and how to get a 6-digit code, and
// stops cleanly on Ctrl-C.
//
//	go run ./cmd/demo [-caddyfile Caddyfile] [-k1-config FILE] [-print-codes]
//
// Environment variables the Caddyfile reads get demo defaults when unset:
// K1_CLIENT_ID=bms-proxy, K1_CLIENT_SECRET=bms-proxy-secret and a fixed,
// public K1SSO_COOKIE_SECRET that is for this demo only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile" // registers the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/examples/bms"
	"github.com/k1sso/k1sso/k1dev"
)

// The demo world's addresses (the URLs the README lists).
const (
	k1Addr    = "127.0.0.1:9000"
	k1Issuer  = "http://127.0.0.1:9000"
	bmsAddr   = "127.0.0.1:8081"
	proxyURL  = "http://localhost:8080"
	codeEvery = 30 * time.Second
)

// demoCookieSecret is the cookie secret the demo uses when
// K1SSO_COOKIE_SECRET is unset. It is public: DEMO ONLY, never use it
// anywhere real.
const demoCookieSecret = "k1sso-demo-only-cookie-secret-DO-NOT-USE-IN-PRODUCTION"

// envDefaults are set for the Caddyfile when unset.
var envDefaults = []struct{ name, value string }{
	{"K1_CLIENT_ID", "bms-proxy"},
	{"K1_CLIENT_SECRET", "bms-proxy-secret"},
	{"K1SSO_COOKIE_SECRET", demoCookieSecret},
}

func main() {
	caddyfile := flag.String("caddyfile", "Caddyfile", "Caddyfile for the proxy on :8080")
	k1Config := flag.String("k1-config", "", "k1dev JSON config file (default: the built-in demo data)")
	printCodes := flag.Bool("print-codes", false, "print every user's current 6-digit code every 30 s")
	flag.Parse()

	if err := run(*caddyfile, *k1Config, *printCodes); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts the three parts, prints the banner and waits for a signal.
func run(caddyfilePath, k1ConfigPath string, printCodes bool) error {
	for _, e := range envDefaults {
		if os.Getenv(e.name) == "" {
			if err := os.Setenv(e.name, e.value); err != nil {
				return fmt.Errorf("setting %s: %w", e.name, err)
			}
		}
	}

	k1Cfg := k1dev.DefaultConfig()
	if k1ConfigPath != "" {
		var err error
		if k1Cfg, err = k1dev.LoadConfig(k1ConfigPath); err != nil {
			return err
		}
	}
	k1, err := k1dev.New(k1Issuer, k1Cfg)
	if err != nil {
		return fmt.Errorf("starting k1dev: %w", err)
	}

	// Read and adapt the Caddyfile before anything listens, so a bad file
	// fails fast with Caddy's own message.
	caddyJSON, err := adaptCaddyfile(caddyfilePath)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	errc := make(chan error, 2)
	k1Srv, err := serve("k1dev", k1Addr, k1, errc)
	if err != nil {
		return err
	}
	defer shutdown(k1Srv)
	bmsSrv, err := serve("demo BMS", bmsAddr, bms.New(bms.DefaultConfig()), errc)
	if err != nil {
		return err
	}
	defer shutdown(bmsSrv)

	if err := caddy.Load(caddyJSON, true); err != nil {
		return fmt.Errorf("starting caddy with %s: %w", caddyfilePath, err)
	}
	defer func() {
		if err := caddy.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping caddy:", err)
		}
	}()

	printBanner(os.Stdout, k1Cfg, caddyfilePath)
	if printCodes {
		go printCodesLoop(ctx, os.Stdout, k1, k1Cfg)
	}

	select {
	case <-ctx.Done():
		stop() // a second Ctrl-C kills the process
		fmt.Fprintln(os.Stderr, "\ndemo: stopping (Ctrl-C again to force)")
		return nil
	case err := <-errc:
		return err
	}
}

// adaptCaddyfile reads a Caddyfile and adapts it to Caddy's JSON config.
func adaptCaddyfile(path string) ([]byte, error) {
	body, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading caddyfile: %w", err)
	}
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		return nil, errors.New("adapting caddyfile: no caddyfile adapter registered")
	}
	cfg, warnings, err := adapter.Adapt(body, map[string]any{"filename": path})
	if err != nil {
		return nil, fmt.Errorf("adapting %s: %w", path, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "demo: caddyfile warning: %s\n", w.String())
	}
	return cfg, nil
}

// serve listens on addr (failing at once if it is taken) and serves h in the
// background; a later serving error goes to errc.
func serve(name, addr string, h http.Handler, errc chan<- error) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serving %s: %w", name, err)
		}
	}()
	return srv, nil
}

// shutdown stops srv, waiting a little for requests in flight.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// printBanner tells the user what to open and how to log in.
func printBanner(w io.Writer, cfg *k1dev.Config, caddyfilePath string) {
	fmt.Fprintf(w, `
k1sso demo is running (Ctrl-C stops it)

  BMS via the proxy   %s          (Caddy, %s)
  KaseyaOne (k1dev)   %s
  demo BMS direct     http://%s     (no proxy; native login only)

KaseyaOne users (log in with username, company, password and a 6-digit code):

`, proxyURL, caddyfilePath, k1Issuer, bmsAddr)
	tw := tabwriter.NewWriter(w, 2, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "  K1 user\tcompany\tpassword\temail")
	for _, u := range cfg.Users {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", u.Username, u.Company, u.Password, u.Email)
	}
	_ = tw.Flush()
	fmt.Fprint(w, `
6-digit code:  go run ./cmd/k1dev totp -user alice
               (or start the demo with -print-codes to see every code each 30 s)

BMS's own accounts (native login, no KaseyaOne):
  alice / alice-bms, bob / bob-bms (tenant acme), alice.labs / alice.labs-bms (tenant acme-labs)

A form after the session ended: log in with KaseyaOne, open Service Desk → New ticket,
leave it unused past the idle timeout (5 minutes in the root Caddyfile), then submit:
it is sent again after the KaseyaOne login.

`)
}

// printCodesLoop prints every user's current code at the start of each
// 30-second TOTP period until ctx ends.
func printCodesLoop(ctx context.Context, w io.Writer, k1 *k1dev.Server, cfg *k1dev.Config) {
	for {
		now := time.Now()
		fmt.Fprintf(w, "codes at %s:", now.Format("15:04:05"))
		for _, u := range cfg.Users {
			code, err := k1.TOTP(u.Username)
			if err != nil {
				code = "error: " + err.Error()
			}
			fmt.Fprintf(w, "  %s %s", u.Username, code)
		}
		fmt.Fprintln(w)
		next := now.Truncate(codeEvery).Add(codeEvery)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
	}
}
