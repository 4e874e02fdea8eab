package e2e

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
