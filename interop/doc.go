// Package interop holds k1sso's interoperability tests against OpenID
// Providers written by others: Ory Hydra (built from the Go module proxy
// through the tools module in tools/hydra, run as a process with an
// in-memory database) and zitadel/oidc's example OP (run in the test
// process). Each test logs in through the real Caddy with the OP's own
// defaults (issuer spelling, signing keys, claims) and checks what reaches
// the upstream, RP-initiated logout and, where the OP sends it,
// back-channel logout.
//
// The tests build what they need themselves (go build, cached in the temp
// folder); a build that fails is a test failure, never a skip.
package interop
