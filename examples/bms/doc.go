// Package bms is a small stand-in for Kaseya BMS, the upstream application
// k1sso puts behind KaseyaOne single sign-on. It is what the demo and the
// end-to-end tests proxy to, and it behaves like an unmodified BMS:
//
//   - its own login page at /login (username and password, see
//     DefaultConfig for the accounts) that starts a native session in the
//     BMSSESSION cookie;
//   - /dashboard, /tickets and /admin/integrations, which need a logged-in
//     user (else 302 to /login), with the user's name top right in
//     <span id="user-name"> and a logout link <a id="logout" href="/logout">;
//   - /logout (GET or POST), which ends the native session;
//   - header trust: a request carrying X-BMS-User and X-BMS-Tenant counts as
//     logged in as that user in that tenant, whatever BMSSESSION says, as a
//     header-trusting application behind the proxy does;
//   - /api/whoami-headers, JSON of the identity headers it received, so tests
//     can see what the proxy sent upstream;
//   - /static/bms.css, a public asset.
//
// Use it as an http.Handler:
//
//	srv := &http.Server{Addr: "127.0.0.1:8081", Handler: bms.New(bms.DefaultConfig())}
//
// or run it alone with `go run ./examples/bms/cmd/bms`.
package bms
