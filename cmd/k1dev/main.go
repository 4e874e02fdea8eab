// Command k1dev runs a development KaseyaOne (K1): a real OpenID Provider
// with K1's login (username, company, password, 6-digit TOTP code), My
// Modules, the app launcher, Admin Settings → Module URLs and back-channel
// logout. Run with no flags for the demo data of DESIGN.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/k1sso/k1sso/k1dev"
)

const usage = `k1dev — a development KaseyaOne (OpenID Provider)

Usage:
  k1dev [-addr 127.0.0.1:9000] [-issuer URL] [-config FILE]
  k1dev totp -user NAME [-config FILE]

Serve:
  -addr     listen address (default 127.0.0.1:9000)
  -issuer   issuer URL (default http://<addr>)
  -config   JSON config (companies, users, clients, modules); default: the demo
            data (alice / Acme MSP / alice-pass, bob / Acme MSP / bob-pass,
            carol / Other Co / carol-pass; client bms-proxy / bms-proxy-secret)

totp:
  prints the current 6-digit authenticator code of a user, e.g.
  k1dev totp -user alice

Signing key rotation (a new RS256 key signs; old keys stay in the JWKS):
  kill -HUP <pid>                                   or
  curl -X POST http://127.0.0.1:9000/dev/rotate-key (loopback clients only)

Pages: / (home, My Modules), /launcher (app launcher), /admin/module-urls
(Landing Page per module; company admins edit), /logout.
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "totp" {
		os.Exit(totpCmd(os.Args[2:]))
	}
	fs := flag.NewFlagSet("k1dev", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	addr := fs.String("addr", "127.0.0.1:9000", "listen address")
	issuer := fs.String("issuer", "", "issuer URL (default http://<addr>)")
	cfgPath := fs.String("config", "", "JSON config file (default: demo data)")
	_ = fs.Parse(os.Args[1:])
	if *issuer == "" {
		*issuer = "http://" + *addr
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k1dev:", err)
		os.Exit(2)
	}
	srv, err := k1dev.New(*issuer, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k1dev:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			if err := srv.RotateKey(); err != nil {
				slog.Error("k1dev: rotating key", "err", err)
				continue
			}
			slog.Info("k1dev: signing key rotated (SIGHUP)")
		}
	}()

	hs := &http.Server{Addr: *addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(shutdown)
	}()
	slog.Info("k1dev: listening", "addr", *addr, "issuer", *issuer, "discovery", *issuer+"/.well-known/openid-configuration")
	fmt.Fprintf(os.Stderr, "k1dev: open %s/ ; codes: k1dev totp -user alice\n", *issuer)
	if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "k1dev:", err)
		os.Exit(1)
	}
}

// totpCmd prints a user's current code.
func totpCmd(args []string) int {
	fs := flag.NewFlagSet("k1dev totp", flag.ExitOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	user := fs.String("user", "", "username")
	cfgPath := fs.String("config", "", "JSON config file (default: demo data)")
	_ = fs.Parse(args)
	if *user == "" {
		fs.Usage()
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k1dev:", err)
		return 2
	}
	for _, u := range cfg.Users {
		if u.Username == *user {
			code, err := k1dev.CurrentCode(u.TOTPSecret)
			if err != nil {
				fmt.Fprintln(os.Stderr, "k1dev: generating code:", err)
				return 1
			}
			fmt.Println(code)
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "k1dev: unknown user %q\n", *user)
	return 1
}

func loadConfig(path string) (*k1dev.Config, error) {
	if path == "" {
		return k1dev.DefaultConfig(), nil
	}
	return k1dev.LoadConfig(path)
}
