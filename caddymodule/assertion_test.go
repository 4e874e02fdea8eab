package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// payloadClaims are the claims as a relying party decodes them.
type payloadClaims struct {
	Aud     string   `json:"aud"`
	BMSUser string   `json:"bms_user"`
	Email   string   `json:"email"`
	Exp     int64    `json:"exp"`
	Iat     int64    `json:"iat"`
	Iss     string   `json:"iss"`
	Roles   []string `json:"roles"`
	Sub     string   `json:"sub"`
	Tenant  string   `json:"tenant"`
}

// verifyToken checks a token's ES256 signature against the JWKS, as an
// upstream would, and returns its claims.
func verifyToken(t *testing.T, tok string, set jose.JSONWebKeySet) payloadClaims {
	t.Helper()
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parse %q: %v", tok, err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys in the JWKS", jws.Signatures[0].Header.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("signature of the rebuilt token: %v", err)
	}
	var c payloadClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("claims %s: %v", payload, err)
	}
	return c
}

// The cache keeps the signature only; the token rebuilt from it on every
// request must verify and carry the identity.
func TestAssertionRebuiltFromSignatureVerifies(t *testing.T) {
	a, set := testSigner(t)
	acc := &account{Email: "bob@acme.example", BMSUser: "bob", Tenant: "acme", Roles: []string{"admin", "billing"}}
	now := time.Unix(1_800_000_000, 0)
	as, err := a.sign("https://bms.example", "k1|bob", "bob@acme.example", acc, now)
	if err != nil {
		t.Fatal(err)
	}
	tok := a.encode("https://bms.example", "k1|bob", "bob@acme.example", acc, &as)
	if again := a.encode("https://bms.example", "k1|bob", "bob@acme.example", acc, &as); again != tok {
		t.Fatalf("two encodings differ:\n%s\n%s", tok, again)
	}
	c := verifyToken(t, tok, set)
	want := payloadClaims{Aud: "bms", BMSUser: "bob", Email: "bob@acme.example", Exp: now.Add(assertionTTL).Unix(),
		Iat: now.Unix(), Iss: "https://bms.example", Roles: []string{"admin", "billing"}, Sub: "k1|bob", Tenant: "acme"}
	if got, _ := json.Marshal(c); string(got) != mustJSON(t, want) {
		t.Errorf("claims %s, want %s", got, mustJSON(t, want))
	}

	// A rebuilt token whose identity differs from the signed one must not
	// verify: the signature covers every claim.
	forged := a.encode("https://bms.example", "k1|bob", "alice@acme.example", acc, &as)
	jws, err := jose.ParseSigned(forged, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(set.Keys[0].Key); err == nil {
		t.Error("a token with another email verified under the same signature")
	}
}

// No roles is an empty array, not null.
func TestAssertionNoRoles(t *testing.T) {
	a, set := testSigner(t)
	acc := &account{BMSUser: "bob", Tenant: "acme"}
	as, err := a.sign("http://127.0.0.1:8080", "k1|bob", "bob@acme.example", acc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tok := a.encode("http://127.0.0.1:8080", "k1|bob", "bob@acme.example", acc, &as)
	_, payload, _ := strings.Cut(tok, ".")
	c := verifyToken(t, tok, set)
	if c.Roles == nil || len(c.Roles) != 0 {
		t.Errorf("roles %#v in %s", c.Roles, payload)
	}
}

// Claims come from K1 and the users file; whatever they hold, the payload
// is valid JSON that decodes to what encoding/json would give.
func TestAssertionPayloadEscaping(t *testing.T) {
	for _, s := range []string{
		"plain", `quo"te`, `back\slash`, "new\nline\ttab\x00nul\x1f", "ünïcödé ✓ 𝄞",
		"bad\xffutf8\xc3", "\u2028\u2029", "<script>&amp;", "",
	} {
		acc := &account{BMSUser: s, Tenant: s, Roles: []string{s, s}}
		got := appendAssertionPayload(nil, s, s, s, acc, 1, 2)
		if !json.Valid(got) {
			t.Errorf("%q: invalid JSON %s", s, got)
			continue
		}
		var c payloadClaims
		if err := json.Unmarshal(got, &c); err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal([]byte(mustJSON(t, s)), &want); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{c.BMSUser, c.Email, c.Iss, c.Sub, c.Tenant, c.Roles[0], c.Roles[1]} {
			if v != want {
				t.Errorf("%q came back as %q, want %q", s, v, want)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
