package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "k1sso",
		Usage: "check|secret|revoke|status",
		Short: "Checks and operates the k1sso KaseyaOne single sign-on",
		Long: `
Commands of the k1sso module (KaseyaOne single sign-on for Kaseya BMS):

  check   checks a config against KaseyaOne, the users file and the store
  secret  prints a new random cookie secret
  revoke  ends every session of a user on every instance (admin API)
  status  shows the state of the running k1sso handlers (admin API)

revoke and status talk to Caddy's admin API, at ` + caddy.DefaultAdminListen + ` unless
--address (or the admin address of --config) says otherwise.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(checkCommand(), secretCommand(), revokeCommand(), statusCommand())
		},
	})
}

func checkCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "check --config <path> [--adapter <name>]",
		Short: "Checks every k1sso handler of a config against KaseyaOne",
		Long: `
Checks every k1sso handler of a config before users arrive, one line per
check (ok, FAIL, or info for what to register at KaseyaOne):

  config     the options are valid (secrets expanded, env variables set)
  discovery  KaseyaOne's discovery answers and its issuer equals the
             configured issuer exactly
  client     KaseyaOne accepts the client ID and secret: a token request with
             a made-up code must fail with invalid_grant, not invalid_client
  register   the redirect, post-logout, initiate-login and back-channel
             logout URIs to register at KaseyaOne
  users      the users file parses (errors name the line)
  store      the store (Caddy's storage or Redis) answers

The exit status is 1 when any check fails. Secrets are never printed.`,
		Args: cobra.NoArgs,
	}
	c.Flags().StringP("config", "c", "", "Configuration file (required)")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply")
	c.RunE = caddycmd.WrapCommandFuncForCobra(cmdCheck)
	return c
}

func cmdCheck(fl caddycmd.Flags) (int, error) {
	file := fl.String("config")
	if file == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--config is required")
	}
	cfg, _, _, err := caddycmd.LoadConfig(file, fl.String("adapter"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	failed, err := runCheck(ctx, os.Stdout, caddy.RemoveMetaFields(cfg))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if failed {
		return caddy.ExitCodeFailedStartup, errors.New("k1sso check: a check failed (lines marked FAIL)")
	}
	return caddy.ExitCodeSuccess, nil
}

func secretCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "secret",
		Short: "Prints a new random cookie secret",
		Long: `
Prints a new random cookie secret (32 random bytes, base64url) for the
cookie_secret option, e.g. K1SSO_COOKIE_SECRET=$(caddy k1sso secret).`,
		Args: cobra.NoArgs,
		RunE: caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) {
			fmt.Println(newCookieSecret())
			return caddy.ExitCodeSuccess, nil
		}),
	}
}

// newCookieSecret returns 32 random bytes, base64url-encoded (43 bytes, so
// above cookie_secret's minimum of 32).
func newCookieSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// adminFlags adds the flags that find the admin API, as Caddy's own
// commands do.
func adminFlags(c *cobra.Command) {
	c.Flags().StringP("address", "", "", "Address of the administration API listener (if --config is not used)")
	c.Flags().StringP("config", "c", "", "Configuration file (if --address is not used)")
	c.Flags().StringP("adapter", "a", "", "Name of config adapter to apply (if --config is used)")
}

func revokeCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "revoke --email <email> | --sub <sub> | --sid <sid> [--address <admin>]",
		Short: "Ends every session of a user on every instance",
		Long: `
Ends sessions through the running Caddy's admin API (POST /k1sso/revoke):
every session of an email (--email), of a K1 user (--sub) or of one K1
session (--sid), issued until now. The revocation goes through the store, so
it holds on every instance sharing it (Redis: at once; Caddy's storage:
within about a second). It prints how many sessions this instance had seen;
sessions live in cookies, so others are ended too but cannot be counted.`,
		Args: cobra.NoArgs,
	}
	c.Flags().String("email", "", "Email of the user")
	c.Flags().String("sub", "", "K1 subject (sub) of the user")
	c.Flags().String("sid", "", "K1 session ID (sid)")
	adminFlags(c)
	c.RunE = caddycmd.WrapCommandFuncForCobra(cmdRevoke)
	return c
}

func cmdRevoke(fl caddycmd.Flags) (int, error) {
	req := RevokeRequest{Email: fl.String("email"), Sub: fl.String("sub"), SID: fl.String("sid")}
	if _, _, err := req.target(); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("use one of --email, --sub or --sid: %v", err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	out, err := adminRequest(fl, http.MethodPost, "/k1sso/revoke", bytes.NewReader(body))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	var resp RevokeResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("decoding the answer: %v", err)
	}
	fmt.Printf("revoked by %s in %d k1sso handler(s); %d session(s) of it were cached here\n",
		resp.Kind, resp.Handlers, resp.CachedSessions)
	return caddy.ExitCodeSuccess, nil
}

func statusCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "status [--address <admin>]",
		Short: "Shows the state of the running k1sso handlers",
		Long: `
Prints GET /k1sso/status of the running Caddy's admin API: per k1sso handler
whether discovery is loaded and when, the age of K1's keys, whether the store
is in sync, when the users file was loaded and how many sessions are cached.
The exit status is 1 when anything is not OK (the API answers 503 then).`,
		Args: cobra.NoArgs,
	}
	adminFlags(c)
	c.RunE = caddycmd.WrapCommandFuncForCobra(cmdStatus)
	return c
}

func cmdStatus(fl caddycmd.Flags) (int, error) {
	out, err := adminRequest(fl, http.MethodGet, "/k1sso/status", nil)
	var st Status
	if jerr := json.Unmarshal(out, &st); jerr != nil {
		if err == nil {
			err = fmt.Errorf("decoding the answer: %v", jerr)
		}
		return caddy.ExitCodeFailedStartup, err
	}
	printStatus(os.Stdout, &st)
	if !st.OK {
		return caddy.ExitCodeFailedStartup, errors.New("k1sso status: not OK")
	}
	return caddy.ExitCodeSuccess, nil
}

func printStatus(w io.Writer, st *Status) {
	if len(st.Handlers) == 0 {
		fmt.Fprintln(w, "FAIL  no k1sso handler is running")
	}
	for i, h := range st.Handlers {
		mark := "ok  "
		if !h.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s  handler %d: issuer %s, client %s, store %s\n", mark, i+1, h.Issuer, h.ClientID, h.Store)
		if h.Discovery != nil {
			fmt.Fprintf(w, "      discovery loaded %s\n", h.Discovery.Format("2006-01-02 15:04:05 MST"))
		}
		if h.JWKSAgeSeconds != nil {
			fmt.Fprintf(w, "      keys fetched %.0fs ago\n", *h.JWKSAgeSeconds)
		}
		fmt.Fprintf(w, "      store in sync: %v; users file %s loaded %s (%d emails); %d sessions cached\n",
			h.StoreInSync, h.Users, h.UsersLoaded.Format("2006-01-02 15:04:05 MST"), h.UsersEmails, h.CachedSessions)
		for _, p := range h.Problems {
			fmt.Fprintf(w, "      problem: %s\n", p)
		}
	}
}

// adminRequest sends one request to the admin API found by the flags and
// returns the body, also (with an error) for an answer of 400 or more.
func adminRequest(fl caddycmd.Flags, method, uri string, body io.Reader) ([]byte, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return nil, fmt.Errorf("finding the admin API address: %v", err)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, body)
	if err != nil {
		// AdminAPIRequest puts the body of an error answer into the error.
		msg := err.Error()
		if i := strings.Index(msg, "{"); i >= 0 {
			return []byte(msg[i:]), fmt.Errorf("admin API at %s: %s", addr, msg)
		}
		return nil, fmt.Errorf("admin API at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
}
