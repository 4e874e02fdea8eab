package caddymodule_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/k1sso/k1sso/caddymodule"
	"github.com/k1sso/k1sso/internal/hostileop"
	"github.com/k1sso/k1sso/internal/testenv"
)

// hostileCase is one login against the hostile OP behaving as b.
type hostileCase struct {
	name   string
	b      hostileop.Behavior
	status int // 0: accepted
}

// try runs tc's login as a subtest, the OP behaving well again after it,
// and asserts it was accepted or refused with tc.status.
func (h *hostile) try(t *testing.T, tc hostileCase) {
	t.Run(tc.name, func(t *testing.T) {
		h.op.Set(tc.b)
		defer h.op.Set(hostileop.Behavior{})
		h.up.Reset()
		c, resp := h.login(t)
		if tc.status == 0 {
			h.accepted(t, resp)
		} else {
			h.refused(t, c, resp, tc.status)
		}
	})
}

// TestHostileOP logs in through the real Caddy against an OP that answers
// with one defect of OIDC Core §3.1.3.7 or the RP test plan per case.
func TestHostileOP(t *testing.T) {
	h := newHostile(t)
	now := time.Now()
	cases := []hostileCase{
		{name: "valid", status: 0},
		{name: "bad signature", b: hostileop.Behavior{Sign: hostileop.SignBadSignature}, status: 400},
		{name: "alg none", b: hostileop.Behavior{Sign: hostileop.SignNone}, status: 400},
		{name: "HS256 with the RSA public key", b: hostileop.Behavior{Sign: hostileop.SignHS256PublicKey}, status: 400},
		{name: "wrong iss", b: hostileop.Behavior{Claims: set("iss", "http://evil.example")}, status: 400},
		{name: "wrong aud", b: hostileop.Behavior{Claims: set("aud", "other-client")}, status: 400},
		{name: "several aud without azp", b: hostileop.Behavior{Claims: set("aud", []string{hostileop.ClientID, "other-client"})}, status: 400},
		{name: "several aud with our azp", b: hostileop.Behavior{Claims: func(c map[string]any) {
			c["aud"], c["azp"] = []string{hostileop.ClientID, "other-client"}, hostileop.ClientID
		}}, status: 0},
		{name: "wrong azp", b: hostileop.Behavior{Claims: set("azp", "other-client")}, status: 400},
		{name: "no sub", b: hostileop.Behavior{Claims: del("sub")}, status: 400},
		{name: "no iat", b: hostileop.Behavior{Claims: del("iat")}, status: 400},
		{name: "expired", b: hostileop.Behavior{Claims: set("exp", now.Add(-10*time.Minute).Unix())}, status: 400},
		{name: "iat far in the future", b: hostileop.Behavior{Claims: set("iat", now.Add(time.Hour).Unix())}, status: 400},
		{name: "no kid, one key", b: hostileop.Behavior{NoKid: true}, status: 0},
		{name: "nonce missing", b: hostileop.Behavior{Claims: del("nonce")}, status: 400},
		{name: "nonce wrong", b: hostileop.Behavior{Claims: set("nonce", "not-the-nonce-we-sent")}, status: 400},
		{name: "state mismatch", b: hostileop.Behavior{State: "forged-state-0123456789abcdef"}, status: 400},
		// Claim names are case-sensitive: "Email" is not email, and go-oidc's
		// case-blind decoding must not make it one.
		{name: "Email for email", b: hostileop.Behavior{Claims: func(c map[string]any) { c["Email"] = c["email"]; delete(c, "email") }}, status: 400},
		{name: "SUB for sub", b: hostileop.Behavior{Claims: func(c map[string]any) { c["SUB"] = c["sub"]; delete(c, "sub") }}, status: 400},
		{name: "email_verified false", b: hostileop.Behavior{Claims: set("email_verified", false)}, status: 403},
		{name: "email only from userinfo", b: hostileop.Behavior{Claims: del("email", "email_verified")}, status: 0},
		{name: "userinfo sub differs", b: hostileop.Behavior{Claims: del("email", "email_verified"),
			UserInfo: set("sub", "k1|mallory")}, status: 400},
	}
	for _, tc := range cases {
		h.try(t, tc)
		if t.Failed() {
			return
		}
	}
}

// TestHostileOPNoKidSeveralKeys: a token without kid is refused when the
// JWKS has several keys, even though one of them made the signature.
func TestHostileOPNoKidSeveralKeys(t *testing.T) {
	h := newHostile(t)
	h.op.AddKey(t)
	h.op.Set(hostileop.Behavior{NoKid: true})
	c, resp := h.login(t)
	h.refused(t, c, resp, 400)
	h.op.Set(hostileop.Behavior{})
	_, resp = h.login(t)
	h.accepted(t, resp)
}

// TestHostileOPRequireMFA: with require_mfa, an amr without a second factor
// is refused.
func TestHostileOPRequireMFA(t *testing.T) {
	h := newHostile(t, "require_mfa")
	h.op.Set(hostileop.Behavior{Claims: set("amr", []string{"pwd"})})
	c, resp := h.login(t)
	h.refused(t, c, resp, 403)
	h.op.Set(hostileop.Behavior{Claims: del("amr")})
	c, resp = h.login(t)
	h.refused(t, c, resp, 403)
	h.op.Set(hostileop.Behavior{})
	_, resp = h.login(t)
	h.accepted(t, resp)
}

// TestHostileOPReplayedCallback: the same code and state (and the login
// cookie that goes with them) replayed in another browser get nothing, even
// though the OP would exchange the code again.
func TestHostileOPReplayedCallback(t *testing.T) {
	h := newHostile(t)
	a := testenv.NoRedirect(newJar())
	resp := get(t, a, h.px.URL+"/.k1sso/login?rd=/dashboard")
	resp.Body.Close()
	resp = get(t, a, resp.Header.Get("Location")) // the OP's authorize
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "/.k1sso/callback?") {
		t.Fatalf("no callback redirect: %d %q", resp.StatusCode, callback)
	}
	// The attacker copies the callback URL and the login cookie.
	u, _ := url.Parse(h.px.URL)
	b := &http.Client{Jar: newJar(), Timeout: 15 * time.Second}
	b.Jar.SetCookies(u, a.Jar.Cookies(u))

	resp = get(t, a, callback)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("first callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tokens := h.op.TokenHits()
	h.up.Reset()
	resp = get(t, b, callback)
	h.refused(t, b, resp, 400)
	if h.op.TokenHits() != tokens {
		t.Error("the replayed code was sent to the OP again")
	}
	// The same browser replaying its own callback is refused too.
	resp = get(t, &http.Client{Jar: newJar(), Timeout: 15 * time.Second}, callback)
	if resp.StatusCode != 400 {
		t.Errorf("replay without the login cookie: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

// TestHostileOPKeyRotationRightAfterLogin: the OP rotates its key
// milliseconds after a login and signs the next one with the new key
// (OpenID Foundation rp-key-rotation-op-sign-key): that login works, with
// the default refetch interval, also right after a flood of logout tokens
// with made-up kids, which cost K1 at most one JWKS fetch.
func TestHostileOPKeyRotationRightAfterLogin(t *testing.T) {
	h := newHostile(t)
	_, resp := h.login(t)
	h.accepted(t, resp)
	h.op.Rotate(t)
	_, resp = h.login(t)
	h.accepted(t, resp)

	before := h.op.JWKSHits()
	for i := 0; i < 30; i++ {
		if status, _, _ := postLogout(t, h.px.URL, h.op.LogoutToken(hostileop.Behavior{Sign: hostileop.SignUnknownKey}, "sid-1")); status != http.StatusBadRequest {
			t.Fatalf("logout token %d with a made-up kid: %d, want 400", i, status)
		}
	}
	if n := h.op.JWKSHits() - before; n > 1 {
		t.Errorf("30 logout tokens with made-up kids made %d JWKS fetches, want at most 1", n)
	}
	h.op.Rotate(t)
	_, resp = h.login(t)
	h.accepted(t, resp)
	// A logout token signed with the new key is verified at once too.
	if status, _, body := postLogout(t, h.px.URL, h.op.LogoutToken(hostileop.Behavior{}, "sid-2")); status != http.StatusOK {
		t.Errorf("logout token with the current key: %d %v", status, body)
	}
}

// TestHostileOPKeyRotation: a new kid in the JWKS is fetched and accepted
// without a restart.
func TestHostileOPKeyRotation(t *testing.T) {
	caddymodule.SetJWKSMinRefetch(t, 200*time.Millisecond)
	h := newHostile(t)
	_, resp := h.login(t)
	h.accepted(t, resp)
	h.op.Rotate(t)
	time.Sleep(250 * time.Millisecond)
	_, resp = h.login(t)
	h.accepted(t, resp)
}

// TestHostileOPIssuerTrailingSlash: an OP whose issuer ends in "/" (Ory
// Hydra, Auth0), configured exactly as it publishes it, works: login,
// K1-initiated login and front-channel logout with either spelling of iss,
// and the launcher URL built from the issuer.
func TestHostileOPIssuerTrailingSlash(t *testing.T) {
	op := hostileop.Start(t)
	op.SetIssuer(op.URL + "/")
	h := startHostile(t, op, op.URL+"/")
	_, resp := h.login(t)
	h.accepted(t, resp)

	nr := testenv.NoRedirect(nil)
	for _, iss := range []string{op.URL + "/", op.URL} {
		resp := get(t, nr, h.px.URL+"/.k1sso/initiate?"+url.Values{"iss": {iss}, "tenant": {"acme"}}.Encode())
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), op.URL+"/authorize?") {
			t.Errorf("initiate with iss %q: %d %q, want a redirect to the OP", iss, resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = get(t, nr, h.px.URL+"/.k1sso/frontchannel-logout?"+url.Values{"iss": {iss}, "sid": {"sid-1"}}.Encode())
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("front-channel logout with iss %q: %d", iss, resp.StatusCode)
		}
	}
	resp = get(t, nr, h.px.URL+"/.k1sso/launcher")
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != op.URL+"/launcher" {
		t.Errorf("launcher: %q, want %q", loc, op.URL+"/launcher")
	}
	// A logout token's iss is a signed claim: exactly the issuer.
	if status, _, body := postLogout(t, h.px.URL, op.LogoutToken(hostileop.Behavior{}, "sid-1")); status != http.StatusOK {
		t.Errorf("logout token with iss %q: %d %v", op.Issuer(), status, body)
	}
	if status, _, _ := postLogout(t, h.px.URL, op.LogoutToken(hostileop.Behavior{Claims: set("iss", op.URL)}, "sid-1")); status != http.StatusBadRequest {
		t.Errorf("logout token with iss %q (no slash): %d, want 400", op.URL, status)
	}
}

// TestHostileOPIssuerMismatch: a configured issuer that is not exactly the
// one the OP publishes (a "/" more or less, or another URL altogether) is a
// configuration error that names both, not "KaseyaOne is unreachable".
func TestHostileOPIssuerMismatch(t *testing.T) {
	for _, tc := range []struct{ name, configured, published string }{
		{name: "slash configured, none published", configured: "/", published: ""},
		{name: "none configured, slash published", configured: "", published: "/"},
		{name: "another issuer published", configured: "", published: "https://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := hostileop.Start(t)
			published := op.URL + tc.published
			if strings.HasPrefix(tc.published, "https://") {
				published = tc.published
			}
			op.SetIssuer(published)
			configured := op.URL + tc.configured
			h := startHostile(t, op, configured)
			for i := 0; i < 2; i++ {
				c, resp := h.login(t)
				b := body(t, resp)
				if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "misconfigured") ||
					!strings.Contains(b, "&#34;"+configured+"&#34;") || !strings.Contains(b, "&#34;"+published+"&#34;") ||
					strings.Contains(b, "unreachable") {
					t.Fatalf("login %d: got %d, want the misconfiguration page naming %q and %q: %.2000s", i, resp.StatusCode, configured, published, b)
				}
				if h.sessionCookie(c) != "" {
					t.Fatal("a session cookie was set")
				}
			}
			h.noIdentityUpstream(t)
		})
	}
}

// unusableJWKs are keys a JWKS may carry that k1sso cannot use: a key type
// it does not know (post-quantum AKP), a curve it does not know, RSA
// without its parameters, EC on an unknown curve, no kty at all, and
// members that are not keys.
var unusableJWKs = []map[string]any{
	{"kty": "AKP", "alg": "ML-DSA-65", "kid": "pq-1", "use": "sig", "pub": "AAAA"},
	{"kty": "OKP", "crv": "Ed448", "kid": "ed448-1", "x": "AAAA"},
	{"kty": "RSA", "kid": "rsa-bad", "alg": "RS256", "n": "", "e": "AQAB"},
	{"kty": "RSA", "kid": "rsa-bad-e", "alg": "RS256", "n": "AAAA", "e": "!!"},
	{"kty": "EC", "crv": "P-192", "kid": "ec-192", "x": "AAAA", "y": "AAAA"},
	{"kid": "no-kty", "use": "sig"},
	{"kty": 42},
}

// TestHostileOPUnusableKeysInJWKS: keys k1sso cannot use are skipped (RFC
// 7517 §5), the key that signed the token still works: for the first
// login, after a rotation, and with a token without kid.
func TestHostileOPUnusableKeysInJWKS(t *testing.T) {
	op := hostileop.Start(t)
	op.Set(hostileop.Behavior{ExtraJWKS: unusableJWKs})
	h := startHostile(t, op, op.URL)
	_, resp := h.login(t)
	h.accepted(t, resp)
	h.op.Rotate(t)
	_, resp = h.login(t)
	h.accepted(t, resp)
	h.op.Set(hostileop.Behavior{ExtraJWKS: unusableJWKs, NoKid: true})
	_, resp = h.login(t)
	h.accepted(t, resp)
}

// TestHostileOPAuthorizationResponseIss: RFC 9207. When discovery
// advertises authorization_response_iss_parameter_supported, the callback
// must carry iss equal to the issuer (the mix-up defence); without the
// flag an iss that is there must still match. Compared exactly.
func TestHostileOPAuthorizationResponseIss(t *testing.T) {
	iss := func(v string) hostileop.Behavior {
		return hostileop.Behavior{Callback: func(q url.Values) { q.Set("iss", v) }}
	}
	for _, advertised := range []bool{true, false} {
		op := hostileop.Start(t)
		op.SetDiscovery(set("authorization_response_iss_parameter_supported", advertised))
		h := startHostile(t, op, op.URL)
		missing := 0
		if advertised {
			missing = 400
		}
		for _, tc := range []struct {
			name   string
			b      hostileop.Behavior
			status int // 0: accepted
		}{
			{name: "right iss", b: iss(op.URL)},
			{name: "no iss", status: missing},
			{name: "wrong iss", b: iss("http://evil.example"), status: 400},
			{name: "iss with a slash more", b: iss(op.URL + "/"), status: 400},
			{name: "empty iss", b: iss(""), status: 400},
			{name: "two iss", b: hostileop.Behavior{Callback: func(q url.Values) { q["iss"] = []string{op.URL, "http://evil.example"} }}, status: 400},
		} {
			h.op.Set(tc.b)
			h.up.Reset()
			c, resp := h.login(t)
			if tc.status == 0 {
				h.accepted(t, resp)
			} else {
				h.refused(t, c, resp, tc.status)
			}
			if t.Failed() {
				t.Fatalf("advertised %v, %s", advertised, tc.name)
			}
		}
	}
}

// TestHostileOPRPChecks: what the OpenID Foundation's RP tests check
// beyond TestHostileOP. The JOSE header cannot bring its own key (jwk) or
// point at one (jku, x5u): those are never fetched, never trusted; a crit
// extension k1sso does not implement is refused. An aud array of one with
// azp, a token_type in any letter case and a token response without
// expires_in are fine, also for the userinfo call that uses the token.
func TestHostileOPRPChecks(t *testing.T) {
	h := newHostile(t)
	attacker := func(edit func(hdr map[string]any)) hostileop.Behavior {
		return hostileop.Behavior{Sign: hostileop.SignAttackerKey, Header: edit}
	}
	tokenResp := func(edit func(r map[string]any)) hostileop.Behavior {
		// The email comes from userinfo, which needs the access token.
		return hostileop.Behavior{TokenResponse: edit, Claims: del("email", "email_verified")}
	}
	cases := []hostileCase{
		{name: "unknown crit extension", b: hostileop.Behavior{Header: func(hdr map[string]any) {
			hdr["crit"], hdr["http://example.com/must-understand"] = []string{"http://example.com/must-understand"}, true
		}}, status: 400},
		{name: "crit naming a registered header", b: hostileop.Behavior{Header: func(hdr map[string]any) { hdr["crit"] = []string{"kid"} }}, status: 400},
		{name: "embedded jwk with its own kid", b: attacker(func(hdr map[string]any) { hdr["jwk"] = h.op.AttackerJWK() }), status: 400},
		{name: "embedded jwk with the OP's kid", b: attacker(func(hdr map[string]any) {
			hdr["jwk"], hdr["kid"] = h.op.AttackerJWK(), h.op.CurrentKid()
		}), status: 400},
		{name: "jku to the attacker's keys", b: attacker(func(hdr map[string]any) { hdr["jku"] = h.op.AttackerURL() + "jwks" }), status: 400},
		{name: "x5u to the attacker's certificate", b: attacker(func(hdr map[string]any) { hdr["x5u"] = h.op.AttackerURL() + "cert.pem" }), status: 400},
		{name: "jku to the attacker with the OP's kid", b: attacker(func(hdr map[string]any) {
			hdr["jku"], hdr["kid"] = h.op.AttackerURL()+"jwks", h.op.CurrentKid()
		}), status: 400},
		{name: "aud array of one with azp", b: hostileop.Behavior{Claims: func(c map[string]any) {
			c["aud"], c["azp"] = []string{hostileop.ClientID}, hostileop.ClientID
		}}},
		{name: "aud array of one without azp", b: hostileop.Behavior{Claims: set("aud", []string{hostileop.ClientID})}},
		{name: "token_type bearer", b: tokenResp(func(r map[string]any) { r["token_type"] = "bearer" })},
		{name: "token_type BEARER", b: tokenResp(func(r map[string]any) { r["token_type"] = "BEARER" })},
		{name: "no expires_in", b: tokenResp(func(r map[string]any) { delete(r, "expires_in") })},
		{name: "userinfo without sub", b: hostileop.Behavior{Claims: del("email", "email_verified"), UserInfo: del("sub")}, status: 400},
		{name: "userinfo email unverified", b: hostileop.Behavior{Claims: del("email", "email_verified"), UserInfo: set("email_verified", false)}, status: 403},
	}
	for _, tc := range cases {
		h.try(t, tc)
	}
	if n := h.op.AttackerHits(); n != 0 {
		t.Errorf("the attacker's jku or x5u was fetched %d times", n)
	}
}

// TestHostileOPSigningAlgs: the ID token's alg must be one discovery's
// id_token_signing_alg_values_supported names (RS256 when the field is
// absent); none and HMAC never count. An OP that advertises no algorithm
// k1sso accepts is a configuration error, not an outage.
func TestHostileOPSigningAlgs(t *testing.T) {
	const algs = "id_token_signing_alg_values_supported"
	for _, tc := range []struct {
		name     string
		discover func(d map[string]any)
		rs, ps   int // status of an RS256 and a PS256 login; 0: accepted
	}{
		{name: "PS256 only", discover: set(algs, []string{"PS256"}), rs: 400},
		{name: "RS256 only", discover: set(algs, []string{"RS256"}), ps: 400},
		{name: "both", discover: set(algs, []string{"PS256", "RS256"})},
		{name: "absent: RS256", discover: del(algs), ps: 400},
		{name: "none and HS256 only", discover: set(algs, []string{"none", "HS256"}), rs: 503, ps: 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := hostileop.Start(t)
			op.SetDiscovery(tc.discover)
			h := startHostile(t, op, op.URL)
			for _, s := range []struct {
				sign   hostileop.Signing
				status int
			}{{hostileop.SignRS256, tc.rs}, {hostileop.SignPS256, tc.ps}} {
				h.op.Set(hostileop.Behavior{Sign: s.sign})
				h.up.Reset()
				c, resp := h.login(t)
				switch s.status {
				case 0:
					h.accepted(t, resp)
				case 503:
					if b := body(t, resp); resp.StatusCode != 503 || !strings.Contains(b, "misconfigured") || !strings.Contains(b, algs) {
						t.Errorf("sign %d: got %d at %s, want the misconfiguration page naming %s", s.sign, resp.StatusCode, resp.Request.URL.Path, algs)
					}
				default:
					h.refused(t, c, resp, s.status)
				}
			}
		})
	}
}
