// Command k1dev runs a development KaseyaOne (K1): a real OpenID Provider
// with K1's login (username, company, password, 6-digit TOTP code), My
// Modules, the app launcher, Admin Settings → Module URLs and back-channel
// logout. Run with no flags for the demo data; docs/k1dev.md describes the
// JSON config and the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/k1sso/k1sso/k1dev"
)

const usage = `k1dev — a development KaseyaOne (OpenID Provider)

Usage:
  k1dev [-addr 127.0.0.1:9000] [-issuer URL] [-config FILE] [-ca-file FILE]
  k1dev totp -user NAME [-config FILE]

Serve:
  -addr     listen address (default 127.0.0.1:9000)
  -issuer   issuer URL (default http://<addr>); a trailing "/" is dropped
  -config   JSON config (companies, users, clients and their redirect and
            logout URIs, modules); default: the demo data (alice / Acme MSP /
            alice-pass, bob / Acme MSP / bob-pass, carol / Other Co /
            carol-pass; client bms-proxy / bms-proxy-secret on
            http://localhost:8080). Example: examples/k1dev.json
  -ca-file  PEM file of CA certificates that back-channel logout calls trust
            besides the system's, e.g. Caddy's local root for a site on
            "tls internal": ~/.local/share/caddy/pki/authorities/local/root.crt

totp:
  prints the current 6-digit authenticator code of a user of the config, e.g.
  k1dev totp -user alice

Signing key rotation (a new RS256 key signs; old keys stay in the JWKS):
  kill -HUP <pid>                                   or
  curl -X POST http://127.0.0.1:9000/dev/rotate-key (loopback clients only)

Pages: / (home, My Modules), /launcher (app launcher), /admin/module-urls
(Landing Page per module; company admins edit), /logout.
Docs: docs/k1dev.md
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command line: it serves until ctx ends, or runs a
// subcommand, and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "totp" {
		return totpCmd(args[1:], stdout, stderr)
	}
	return serve(ctx, args, stderr)
}

// serve runs k1dev until ctx ends.
func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("k1dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	addr := fs.String("addr", "127.0.0.1:9000", "listen address")
	issuer := fs.String("issuer", "", "issuer URL (default http://<addr>)")
	cfgPath := fs.String("config", "", "JSON config file (default: demo data)")
	caFile := fs.String("ca-file", "", "PEM CA certificates back-channel logout calls trust")
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "k1dev: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "k1dev:", err)
		return 2
	}
	var opts []k1dev.Option
	if *caFile != "" {
		pool, err := k1dev.LoadCAFile(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "k1dev: -ca-file: %v\n", err)
			return 2
		}
		opts = append(opts, k1dev.WithRootCAs(pool))
	}

	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(stderr, "k1dev:", err)
		return 1
	}
	if *issuer == "" {
		// The bound address, so that -addr 127.0.0.1:0 yields a usable issuer.
		*issuer = "http://" + l.Addr().String()
	}
	srv, err := k1dev.New(*issuer, cfg, opts...)
	if err != nil {
		l.Close()
		fmt.Fprintln(stderr, "k1dev:", err)
		return 2
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := srv.RotateKey(); err != nil {
				slog.Error("k1dev: rotating key", "err", err)
				continue
			}
			slog.Info("k1dev: signing key rotated (SIGHUP)")
		}
	}()

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdown)
	}()
	defer close(done)
	log := slog.New(slog.NewTextHandler(stderr, nil))
	log.Info("k1dev: listening", "addr", l.Addr().String(), "issuer", srv.Issuer(), "discovery", srv.Issuer()+"/.well-known/openid-configuration")
	if *caFile != "" {
		log.Info("k1dev: back-channel logout trusts the CA file", "ca_file", *caFile)
	}
	fmt.Fprint(stderr, banner(srv.Issuer(), cfg, *cfgPath))
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "k1dev:", err)
		return 1
	}
	return 0
}

// banner tells the user where to start and whose codes to ask for: the
// users of the loaded config, and the totp command that reads that config.
func banner(issuer string, cfg *k1dev.Config, cfgPath string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "k1dev: open %s/ ; users: %s (%s)\n", issuer, userList(cfg), configName(cfgPath))
	if names := cfg.Usernames(); len(names) > 0 {
		fmt.Fprintf(&b, "k1dev: codes: %s\n", totpCommand(cfgPath, names[0]))
	}
	return b.String()
}

// totpCommand is the command line that prints user's code from cfgPath.
func totpCommand(cfgPath, user string) string {
	if cfgPath == "" {
		return "k1dev totp -user " + user
	}
	return fmt.Sprintf("k1dev totp -config %s -user %s", cfgPath, user)
}

// configName names the loaded config in messages.
func configName(cfgPath string) string {
	if cfgPath == "" {
		return "the demo config"
	}
	return cfgPath
}

// userList is the config's usernames, comma separated.
func userList(cfg *k1dev.Config) string {
	if names := cfg.Usernames(); len(names) > 0 {
		return strings.Join(names, ", ")
	}
	return "none"
}

// totpCmd prints a user's current code.
func totpCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("k1dev totp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	user := fs.String("user", "", "username")
	cfgPath := fs.String("config", "", "JSON config file (default: demo data)")
	if err := fs.Parse(args); err != nil {
		return parseStatus(err)
	}
	if *user == "" {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "k1dev:", err)
		return 2
	}
	for _, u := range cfg.Users {
		if u.Username == *user {
			code, err := k1dev.CurrentCode(u.TOTPSecret)
			if err != nil {
				fmt.Fprintln(stderr, "k1dev: generating code:", err)
				return 1
			}
			fmt.Fprintln(stdout, code)
			return 0
		}
	}
	fmt.Fprintf(stderr, "k1dev: unknown user %q in %s (users: %s)", *user, configName(*cfgPath), userList(cfg))
	if *cfgPath == "" {
		fmt.Fprint(stderr, "; -config FILE selects another config")
	}
	fmt.Fprintln(stderr)
	return 1
}

// parseStatus is the exit status for a flag parsing error: 0 for -h, which
// printed the usage as asked, else 2.
func parseStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

func loadConfig(path string) (*k1dev.Config, error) {
	if path == "" {
		return k1dev.DefaultConfig(), nil
	}
	return k1dev.LoadConfig(path)
}
