// Package hostileop is a deliberately misbehaving OpenID Provider for
// k1sso's security tests. It speaks just enough OpenID Connect (discovery,
// JWKS, an authorize endpoint that redirects straight back with a code, a
// token endpoint and userinfo) for a login through the real Caddy, and each
// test chooses which defect of OIDC Core §3.1.3.7 or the OpenID Foundation's
// RP test plan the next answers carry.
//
//	op := hostileop.Start(t)
//	op.Set(hostileop.Behavior{Claims: func(c map[string]any) { c["iss"] = "https://evil" }})
package hostileop

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ClientID is the client the OP expects (the proxy's client in testenv).
const ClientID = "bms-proxy"

// Signing says how the ID token is signed.
type Signing int

const (
	// SignRS256 signs correctly with the current key.
	SignRS256 Signing = iota
	// SignBadSignature signs with the current key, then flips signature bits.
	SignBadSignature
	// SignNone uses "alg":"none" and an empty signature.
	SignNone
	// SignHS256PublicKey signs HS256 with the PEM of the RSA public key as
	// the HMAC secret (the classic key-confusion attack).
	SignHS256PublicKey
	// SignUnknownKey signs with a key that is not in the JWKS, under a
	// fresh random kid each time.
	SignUnknownKey
)

// Behavior is what the OP does on the next logins.
type Behavior struct {
	// Sign chooses the signature. Default: a correct RS256 signature.
	Sign Signing
	// NoKid leaves kid out of the JWS header.
	NoKid bool
	// Claims edits the ID token's claims before signing (delete a key to
	// leave a claim out).
	Claims func(c map[string]any)
	// UserInfo edits the userinfo answer.
	UserInfo func(c map[string]any)
	// State replaces the state the authorize endpoint sends back.
	State string
	// TokenDelay makes the token endpoint sleep before answering.
	TokenDelay time.Duration
	// DiscoveryDelay makes the discovery endpoint sleep before answering.
	DiscoveryDelay time.Duration
	// JWKSDelay makes the JWKS endpoint sleep before answering.
	JWKSDelay time.Duration
}

// OP is a running hostile OP.
type OP struct {
	URL string

	srv      *httptest.Server
	mu       sync.Mutex
	b        Behavior
	keys     []*key // published in the JWKS
	current  *key   // signs ID tokens
	codes    map[string]grant
	down     atomic.Bool
	jwksHits atomic.Int64
	discHits atomic.Int64
	tokHits  atomic.Int64
}

type key struct {
	kid  string
	priv *rsa.PrivateKey
}

type grant struct {
	nonce     string
	challenge string
}

// Start runs a hostile OP on 127.0.0.1 with one signing key; it behaves
// correctly until Set says otherwise.
func Start(tb testing.TB) *OP {
	tb.Helper()
	op := &OP{codes: map[string]grant{}}
	op.current = newKey(tb)
	op.keys = []*key{op.current}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("/jwks", op.jwks)
	mux.HandleFunc("/authorize", op.authorize)
	mux.HandleFunc("/token", op.token)
	mux.HandleFunc("/userinfo", op.userinfo)
	op.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/openid-configuration" {
			op.discHits.Add(1) // attempts count while down too
		}
		if op.down.Load() {
			// Unreachable: the connection closes without an answer.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	tb.Cleanup(op.srv.Close)
	op.URL = op.srv.URL
	return op
}

func newKey(tb testing.TB) *key {
	tb.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return &key{kid: rand32(), priv: priv}
}

// Set replaces the behavior for the following requests.
func (op *OP) Set(b Behavior) {
	op.mu.Lock()
	op.b = b
	op.mu.Unlock()
}

// AddKey publishes a second signing key in the JWKS without using it.
func (op *OP) AddKey(tb testing.TB) {
	tb.Helper()
	k := newKey(tb)
	op.mu.Lock()
	op.keys = append(op.keys, k)
	op.mu.Unlock()
}

// Rotate publishes a new key, signs with it from now on and drops the old
// one from the JWKS, as a key rotation at K1 does.
func (op *OP) Rotate(tb testing.TB) {
	tb.Helper()
	k := newKey(tb)
	op.mu.Lock()
	op.current = k
	op.keys = []*key{k}
	op.mu.Unlock()
}

// SetDown makes the OP unreachable (every connection is closed without an
// answer) or reachable again.
func (op *OP) SetDown(down bool) { op.down.Store(down) }

// JWKSHits, DiscoveryHits and TokenHits count requests at those endpoints.
func (op *OP) JWKSHits() int64 { return op.jwksHits.Load() }

// DiscoveryHits counts discovery requests, also those refused while down.
func (op *OP) DiscoveryHits() int64 { return op.discHits.Load() }

// TokenHits counts token requests.
func (op *OP) TokenHits() int64 { return op.tokHits.Load() }

func (op *OP) behavior() Behavior {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.b
}

func (op *OP) discovery(w http.ResponseWriter, r *http.Request) {
	if d := op.behavior().DiscoveryDelay; d > 0 {
		sleep(r, d)
	}
	writeJSON(w, map[string]any{
		"issuer":                                op.URL,
		"authorization_endpoint":                op.URL + "/authorize",
		"token_endpoint":                        op.URL + "/token",
		"userinfo_endpoint":                     op.URL + "/userinfo",
		"jwks_uri":                              op.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "none", "HS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (op *OP) jwks(w http.ResponseWriter, r *http.Request) {
	op.jwksHits.Add(1)
	if d := op.behavior().JWKSDelay; d > 0 {
		sleep(r, d)
	}
	op.mu.Lock()
	var keys []map[string]string
	for _, k := range op.keys {
		keys = append(keys, map[string]string{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
			"n": b64(k.priv.N.Bytes()), "e": b64(big.NewInt(int64(k.priv.E)).Bytes()),
		})
	}
	op.mu.Unlock()
	writeJSON(w, map[string]any{"keys": keys})
}

// authorize redirects straight back with a code: no login page.
func (op *OP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != ClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := rand32()
	op.mu.Lock()
	op.codes[code] = grant{nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	op.mu.Unlock()
	state := q.Get("state")
	if s := op.behavior().State; s != "" {
		state = s
	}
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := url.Values{"code": {code}, "state": {state}}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// token answers the code exchange. A code stays valid after use: replays
// must be refused by the relying party.
func (op *OP) token(w http.ResponseWriter, r *http.Request) {
	op.tokHits.Add(1)
	b := op.behavior()
	if b.TokenDelay > 0 {
		sleep(r, b.TokenDelay)
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	op.mu.Lock()
	g, ok := op.codes[r.PostForm.Get("code")]
	op.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || b64(sum[:]) != g.challenge {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	now := time.Now()
	claims := map[string]any{
		"iss":            op.URL,
		"sub":            "k1|bob",
		"aud":            ClientID,
		"exp":            now.Add(5 * time.Minute).Unix(),
		"iat":            now.Unix(),
		"nonce":          g.nonce,
		"email":          "bob@acme.example",
		"email_verified": true,
		"name":           "Bob",
		"amr":            []string{"pwd", "otp"},
	}
	if b.Claims != nil {
		b.Claims(claims)
	}
	writeJSON(w, map[string]any{
		"access_token": "at-" + rand32(),
		"token_type":   "Bearer",
		"expires_in":   300,
		"id_token":     op.sign(claims, b),
	})
}

func (op *OP) userinfo(w http.ResponseWriter, r *http.Request) {
	c := map[string]any{"sub": "k1|bob", "email": "bob@acme.example", "email_verified": true}
	if f := op.behavior().UserInfo; f != nil {
		f(c)
	}
	writeJSON(w, c)
}

// sign makes the ID token the behavior asks for.
func (op *OP) sign(claims map[string]any, b Behavior) string {
	op.mu.Lock()
	k := op.current
	op.mu.Unlock()
	hdr := map[string]any{"alg": "RS256", "typ": "JWT", "kid": k.kid}
	switch b.Sign {
	case SignNone:
		hdr["alg"] = "none"
	case SignHS256PublicKey:
		hdr["alg"] = "HS256"
	case SignUnknownKey:
		priv, _ := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // throwaway key, only to be refused
		k = &key{kid: rand32(), priv: priv}
		hdr["kid"] = k.kid
	}
	if b.NoKid {
		delete(hdr, "kid")
	}
	hj, _ := json.Marshal(hdr)
	cj, _ := json.Marshal(claims)
	input := b64(hj) + "." + b64(cj)
	var sig []byte
	switch b.Sign {
	case SignNone:
	case SignHS256PublicKey:
		der, _ := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		sig = m.Sum(nil)
	default:
		sum := sha256.Sum256([]byte(input))
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, sum[:])
		if b.Sign == SignBadSignature {
			sig[len(sig)/2] ^= 0x55
		}
	}
	return input + "." + b64(sig)
}

func sleep(r *http.Request, d time.Duration) {
	select {
	case <-time.After(d):
	case <-r.Context().Done():
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rand32() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return b64(b)
}

// Addr is the OP's host:port.
func (op *OP) Addr() string { return op.srv.Listener.Addr().(*net.TCPAddr).String() }

// SignLogout signs a correct back-channel logout token (typ logout+jwt)
// for sub, issued now, with the current key; edit changes its claims.
func (op *OP) SignLogout(sub string, edit func(c map[string]any)) string {
	op.mu.Lock()
	k := op.current
	op.mu.Unlock()
	now := time.Now()
	claims := map[string]any{
		"iss": op.URL, "aud": ClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": rand32(), "sub": sub,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	if edit != nil {
		edit(claims)
	}
	hj, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "logout+jwt", "kid": k.kid})
	cj, _ := json.Marshal(claims)
	input := b64(hj) + "." + b64(cj)
	sum := sha256.Sum256([]byte(input))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, k.priv, crypto.SHA256, sum[:])
	return input + "." + b64(sig)
}
