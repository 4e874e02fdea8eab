package caddymodule

import (
	"encoding/json"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/k1sso/k1sso/store"
)

func TestRevokeRequestTarget(t *testing.T) {
	for _, c := range []struct {
		req         RevokeRequest
		kind, value string
		ok          bool
	}{
		{RevokeRequest{Email: " Bob@Acme.example "}, store.KindEmail, "bob@acme.example", true},
		{RevokeRequest{Email: "\u212aate@acme.example"}, store.KindEmail, "\u212aate@acme.example", true}, // the Kelvin sign is not k
		{RevokeRequest{Sub: "k1|bob"}, store.KindSub, "k1|bob", true},
		{RevokeRequest{SID: "s1"}, store.KindSID, "s1", true},
		{RevokeRequest{}, "", "", false},
		{RevokeRequest{Email: "bob@acme.example", Sub: "x"}, "", "", false},
		{RevokeRequest{Email: "bob"}, "", "", false},
		{RevokeRequest{Email: "@acme"}, "", "", false},
	} {
		kind, value, err := c.req.target()
		if (err == nil) != c.ok || kind != c.kind || value != c.value {
			t.Errorf("%+v: got %q %q %v", c.req, kind, value, err)
		}
	}
}

func TestEmailRevocation(t *testing.T) {
	now := time.Now().Unix()
	mk := func(email string, issued int64) *cachedSession {
		c, _ := newCachedSession(&session{ID: "id-" + email, Subject: "sub-" + email, Email: email, Issued: issued, Expires: now + 3600})
		return &c
	}
	rs := newRevocationSet()
	rv := store.Revocation{Kind: store.KindEmail, Value: "bob@acme.example", Before: now, Expires: now + 60}
	if !rv.Valid() {
		t.Fatal("an email revocation is not valid")
	}
	b, _ := json.Marshal(rv)
	if got, err := store.ParseRevocation(b); err != nil || got != rv {
		t.Fatalf("stored email revocation does not round-trip: %v %v", got, err)
	}
	rs.Add(rv)
	if !rs.matches(mk("bob@acme.example", now-10)) {
		t.Error("bob's older session survives the email revocation")
	}
	if rs.matches(mk("bob@acme.example", now+1)) {
		t.Error("bob's session issued after the revocation is refused")
	}
	if rs.matches(mk("alice@acme.example", now-10)) {
		t.Error("alice's session is refused by bob's revocation")
	}
	rs.sweep(time.Unix(now+61, 0))
	if rs.matches(mk("bob@acme.example", now-10)) {
		t.Error("an expired email revocation is kept")
	}
}

func TestUnsetEnv(t *testing.T) {
	const name = "K1SSO_TEST_SURELY_UNSET_VARIABLE"
	os.Unsetenv(name)
	if got := unsetEnv("{env." + name + "}"); got != "the environment variable "+name+" is unset" {
		t.Errorf("unset: %q", got)
	}
	t.Setenv(name, "")
	if got := emptyHint("{env." + name + "}"); got != " (the environment variable is set but empty)" {
		t.Errorf("set but empty: %q", got)
	}
	if got := emptyHint("literal"); got != "" {
		t.Errorf("literal: %q", got)
	}
}

func TestFindHandlerBases(t *testing.T) {
	app := `{"servers":{
		"a":{"listen":["127.0.0.1:8080"],"automatic_https":{"skip":["localhost"]},
			"routes":[{"match":[{"host":["localhost"]}],"handle":[{"handler":"subroute","routes":[{"handle":[{"handler":"k1sso","issuer":"x"}]}]}]}]},
		"b":{"listen":[":443"],"routes":[{"match":[{"host":["bms.example.com"]}],"handle":[{"handler":"k1sso"}]}]}}}`
	found, err := findHandlers(json.RawMessage(app))
	if err != nil {
		t.Fatal(err)
	}
	var bases [][]string
	for _, f := range found {
		bases = append(bases, f.bases)
	}
	want := [][]string{{"http://localhost:8080"}, {"https://bms.example.com"}}
	if !slices.EqualFunc(bases, want, slices.Equal[[]string]) {
		t.Errorf("bases %v, want %v", bases, want)
	}
	var h Handler
	if err := decodeHandler(found[0].raw, &h); err != nil || h.Issuer != "x" {
		t.Errorf("decodeHandler: %v %q", err, h.Issuer)
	}
}
