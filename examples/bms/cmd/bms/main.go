// Command bms runs the demo stand-in for Kaseya BMS on its own.
//
//	go run ./examples/bms/cmd/bms [-addr 127.0.0.1:8081]
//
// Its native accounts (login at /login) are:
//
//	tenant     user        password
//	acme       alice       alice-bms       (admin)
//	acme       bob         bob-bms
//	acme-labs  alice.labs  alice.labs-bms  (admin)
//
// It trusts X-BMS-User and X-BMS-Tenant, so expose it only behind the proxy.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/k1sso/k1sso/examples/bms"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	flag.Parse()

	srv := &http.Server{
		Addr:              *addr,
		Handler:           bms.New(bms.DefaultConfig()),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Printf("demo BMS on http://%s (accounts: alice/alice-bms, bob/bob-bms, alice.labs/alice.labs-bms)", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("serving: %v", err)
	}
}
