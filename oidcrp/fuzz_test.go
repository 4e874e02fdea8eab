package oidcrp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzLogoutToken: a logout token with any claims, signed by the provider's key, is
// accepted by the back-channel verifier only when Back-Channel Logout 1.0
// §2.6 allows it (our iss and aud, the logout event, sub or sid, no nonce).
func FuzzLogoutToken(f *testing.F) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	const iss, client = "https://k1.example", "bms-proxy"
	ks := newKeySet("", nil, []string{"RS256"}, DefaultMinRefetch)
	ks.loaded, ks.fetched = true, time.Now().Add(time.Hour)
	ks.keys = []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}
	p := New(context.Background(), Config{Issuer: iss, ClientID: client}).NewProvider(ProviderConfig{})
	p.keys = ks
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now().Unix()
	ev := `"events":{"http://schemas.openid.net/event/backchannel-logout":{}}`
	f.Add(fmt.Sprintf(`{"iss":%q,"aud":%q,"iat":%d,"exp":%d,"jti":"j","sid":"s",%s}`, iss, client, now, now+60, ev))
	f.Add(fmt.Sprintf(`{"iss":%q,"aud":%q,"iat":%d,"exp":%d,"jti":"j","sub":"u","nonce":"n",%s}`, iss, client, now, now+60, ev))
	f.Add(fmt.Sprintf(`{"iss":%q,"aud":[%q,"x"],"iat":%d,"exp":%d,"jti":"j","sub":"u","events":{}}`, iss, client, now, now+60))
	f.Add(`{"iss":1,"aud":null,"events":[]}`)
	f.Fuzz(func(t *testing.T, claims string) {
		jws, err := signer.Sign([]byte(claims))
		if err != nil {
			return
		}
		raw, err := jws.CompactSerialize()
		if err != nil {
			return
		}
		lt, err := p.VerifyLogoutToken(context.Background(), raw, 2*time.Minute)
		if err != nil {
			return
		}
		var c map[string]any
		if json.Unmarshal([]byte(claims), &c) != nil {
			t.Fatalf("accepted claims that are not a JSON object: %q", claims)
		}
		ev, _ := c["events"].(map[string]any)
		if _, ok := ev["http://schemas.openid.net/event/backchannel-logout"].(map[string]any); !ok {
			t.Fatalf("accepted a logout token without the logout event object: %q", claims)
		}
		if sid, _ := c["sid"].(string); sid != lt.SessionID {
			t.Fatalf("sid %q read from another member than sid: %q", lt.SessionID, claims)
		}
		if sub, _ := c["sub"].(string); sub != lt.Subject {
			t.Fatalf("sub %q read from another member than sub: %q", lt.Subject, claims)
		}
		if _, ok := c["nonce"]; ok {
			t.Fatalf("accepted a logout token with a nonce: %q", claims)
		}
		if lt.Issuer != iss || (lt.Subject == "" && lt.SessionID == "") {
			t.Fatalf("accepted iss %q sub %q sid %q", lt.Issuer, lt.Subject, lt.SessionID)
		}
	})
}
