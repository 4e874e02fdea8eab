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
	"strings"
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
	// SignPS256 signs correctly with the current key, but PS256.
	SignPS256
	// SignAttackerKey signs with the attacker's key (not in the JWKS; see
	// AttackerJWK) under its own kid, for headers such as jwk or jku
	// that point at it.
	SignAttackerKey
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
	// Header edits the JOSE header of the ID token before signing.
	Header func(h map[string]any)
	// TokenResponse edits the token endpoint's JSON answer.
	TokenResponse func(r map[string]any)
	// Callback edits the parameters the authorize endpoint sends back
	// (e.g. adds iss).
	Callback func(v url.Values)
	// ExtraJWKS are published in the JWKS before the signing keys, as they
	// are (e.g. keys of a type k1sso does not know).
	ExtraJWKS []map[string]any
}

// OP is a running hostile OP.
type OP struct {
	URL string

	srv      *httptest.Server
	mu       sync.Mutex
	b        Behavior
	issuer   string // published in discovery and signed into tokens
	discEdit func(d map[string]any)
	keys     []*key // published in the JWKS
	current  *key   // signs ID tokens
	attacker *key   // never published in the JWKS; made on first use
	codes    map[string]grant
	tokens   map[string]bool // access tokens issued, for userinfo
	down     atomic.Bool
	jwksHits atomic.Int64
	discHits atomic.Int64
	tokHits  atomic.Int64
	evilHits atomic.Int64
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
	op := &OP{codes: map[string]grant{}, tokens: map[string]bool{}}
	op.current = newKey(tb)
	op.keys = []*key{op.current}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("/jwks", op.jwks)
	mux.HandleFunc("/authorize", op.authorize)
	mux.HandleFunc("/token", op.token)
	mux.HandleFunc("/userinfo", op.userinfo)
	mux.HandleFunc("/attacker/", op.attackerKeys)
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
	op.issuer = op.URL
	return op
}

// SetIssuer changes the issuer the OP publishes in discovery and signs into
// its tokens (default: URL), e.g. to URL+"/" as Ory Hydra and Auth0 do.
// Endpoints stay under URL.
func (op *OP) SetIssuer(iss string) {
	op.mu.Lock()
	op.issuer = iss
	op.mu.Unlock()
}

// SetDiscovery edits the discovery document from now on (Set leaves it
// alone). k1sso fetches discovery once, right after start: call it before
// Caddy starts.
func (op *OP) SetDiscovery(edit func(d map[string]any)) {
	op.mu.Lock()
	op.discEdit = edit
	op.mu.Unlock()
}

// Issuer is the issuer the OP publishes.
func (op *OP) Issuer() string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.issuer
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

// CurrentKid is the kid of the key the OP signs with.
func (op *OP) CurrentKid() string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.current.kid
}

// AttackerHits counts requests under AttackerURL: a relying party that
// follows jku or x5u headers fetches from there.
func (op *OP) AttackerHits() int64 { return op.evilHits.Load() }

// AttackerURL is where the attacker's key is served (as a JWKS at
// AttackerURL+"jwks", as a PEM certificate chain stand-in elsewhere).
func (op *OP) AttackerURL() string { return op.URL + "/attacker/" }

// AttackerJWK is the public JWK of the key SignAttackerKey signs with,
// e.g. for a jwk header.
func (op *OP) AttackerJWK() map[string]string { return publicJWK(op.attackerKey()) }

func (op *OP) attackerKey() *key {
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.attacker == nil {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		op.attacker = &key{kid: rand32(), priv: priv}
	}
	return op.attacker
}

func (op *OP) attackerKeys(w http.ResponseWriter, r *http.Request) {
	op.evilHits.Add(1)
	writeJSON(w, map[string]any{"keys": []map[string]string{op.AttackerJWK()}})
}

// LogoutToken returns a back-channel logout token (Back-Channel Logout 1.0
// §2.4) for k1|bob in session sid, signed as b says; b.Claims and b.Header
// edit it.
func (op *OP) LogoutToken(b Behavior, sid string) string {
	now := time.Now()
	claims := map[string]any{
		"iss": op.Issuer(), "aud": ClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": rand32(), "sub": "k1|bob", "sid": sid,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
	if b.Claims != nil {
		b.Claims(claims)
	}
	edit := b.Header
	b.Header = func(h map[string]any) {
		h["typ"] = "logout+jwt"
		if edit != nil {
			edit(h)
		}
	}
	return op.sign(claims, b)
}

func publicJWK(k *key) map[string]string {
	return map[string]string{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
		"n": b64(k.priv.N.Bytes()), "e": b64(big.NewInt(int64(k.priv.E)).Bytes()),
	}
}

func (op *OP) behavior() Behavior {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.b
}

func (op *OP) discovery(w http.ResponseWriter, r *http.Request) {
	b := op.behavior()
	if b.DiscoveryDelay > 0 {
		sleep(r, b.DiscoveryDelay)
	}
	d := map[string]any{
		"issuer":                                op.Issuer(),
		"authorization_endpoint":                op.URL + "/authorize",
		"token_endpoint":                        op.URL + "/token",
		"userinfo_endpoint":                     op.URL + "/userinfo",
		"jwks_uri":                              op.URL + "/jwks",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "none", "HS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	op.mu.Lock()
	edit := op.discEdit
	op.mu.Unlock()
	if edit != nil {
		edit(d)
	}
	writeJSON(w, d)
}

func (op *OP) jwks(w http.ResponseWriter, r *http.Request) {
	op.jwksHits.Add(1)
	b := op.behavior()
	if b.JWKSDelay > 0 {
		sleep(r, b.JWKSDelay)
	}
	var keys []any
	for _, k := range b.ExtraJWKS {
		keys = append(keys, k)
	}
	op.mu.Lock()
	for _, k := range op.keys {
		keys = append(keys, publicJWK(k))
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
	b := op.behavior()
	state := q.Get("state")
	if b.State != "" {
		state = b.State
	}
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	v := url.Values{"code": {code}, "state": {state}}
	if b.Callback != nil {
		b.Callback(v)
	}
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
		"iss":            op.Issuer(),
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
	at := "at-" + rand32()
	op.mu.Lock()
	op.tokens[at] = true
	op.mu.Unlock()
	resp := map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   300,
		"id_token":     op.sign(claims, b),
	}
	if b.TokenResponse != nil {
		b.TokenResponse(resp)
	}
	writeJSON(w, resp)
}

// userinfo answers a request with an access token the token endpoint
// issued, as "Authorization: Bearer" (RFC 6750 §2.1; the scheme in any
// letter case).
func (op *OP) userinfo(w http.ResponseWriter, r *http.Request) {
	scheme, at, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	op.mu.Lock()
	ok := op.tokens[at]
	op.mu.Unlock()
	if !strings.EqualFold(scheme, "bearer") || !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
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
	case SignAttackerKey:
		k = op.attackerKey()
		hdr["kid"] = k.kid
	case SignPS256:
		hdr["alg"] = "PS256"
	}
	if b.NoKid {
		delete(hdr, "kid")
	}
	if b.Header != nil {
		b.Header(hdr)
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
	case SignPS256:
		sum := sha256.Sum256([]byte(input))
		sig, _ = rsa.SignPSS(rand.Reader, k.priv, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
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
