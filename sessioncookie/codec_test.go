package sessioncookie

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// fixedSecret and fixedDeployment are the inputs of the vectors below,
// which k1sso before this package produced: a change of the derivation
// would end every cookie in use, so these must never change.
var (
	fixedSecret     = []byte("0123456789abcdef0123456789abcdef")
	fixedDeployment = Deployment{Issuer: "https://k1.example", ClientID: "bms-proxy"}
)

// TestKeyDerivationIsStable: the keys of every purpose k1sso derives are
// byte for byte those of the code that wrote the cookies now in browsers
// and the kept tokens and forms now in stores.
func TestKeyDerivationIsStable(t *testing.T) {
	for purpose, want := range map[string]string{
		"k1sso session mac":   "df83d111e6182effa6368bb9eb3209272381151ac15c6bf7399271befb4402c0",
		"k1sso session enc":   "c56bc690c3a113a1691a1a6e8c2cc5667b53ed470b91b81d063e24ff8efedaf3",
		"k1sso login mac":     "5ea8a0e899a761a5ad8cb0be1c8a4858b87db2203ac960c4a4856c800c6c5f86",
		"k1sso login enc":     "639f4c908ffd9de2a87a4cd03f76fd51535e28182d9e68bb15fb8da7d0437788",
		"k1sso csrf":          "fc44b0eb2f4097e29d62ff872d23f50348a51cccc96e3ed710be45a8dbbdebf4",
		"k1sso k1 tokens mac": "cf932d884e1daddea2186505a717e196f1650cd540ae5b4e795c087951eec91f",
		"k1sso kept form enc": "e15f59edd9380e0ed80002d83c7abb22a187b1bdb71d03b76f5d89af658ec929",
	} {
		if got := hex.EncodeToString(fixedDeployment.Key(fixedSecret, purpose)); got != want {
			t.Errorf("%q: key %s, want %s", purpose, got, want)
		}
	}
}

// fixedEncoded is a value {"a":"b","n":1} that k1sso before this package
// encoded for the cookie "generic" under the purpose "k1sso session".
const fixedEncoded = "MTc5NjE2MzUyNnx5NTl6VnBHbzhZTS1JNXhoelpERU1UYUQwQXBaNHhqeGpNWkR0ci11QTl3PXxbGayXveHmAhCm-nRLMVuf33gznTlHB_hzSnOWligu8g=="

// TestEarlierCookieDecodes: a cookie written before this package still
// decodes, under the same name and purpose only.
func TestEarlierCookieDecodes(t *testing.T) {
	cs := fixedDeployment.Codecs([][]byte{fixedSecret}, "k1sso session", 0)
	var got map[string]any
	if err := cs.Decode("generic", fixedEncoded, &got); err != nil {
		t.Fatalf("the earlier cookie does not decode: %v", err)
	}
	if len(got) != 2 || got["a"] != "b" || got["n"] != float64(1) {
		t.Fatalf("decoded %v", got)
	}
	for what, other := range map[string]Codecs{
		"another purpose":   fixedDeployment.Codecs([][]byte{fixedSecret}, "k1sso login", 0),
		"another client id": Deployment{Issuer: fixedDeployment.Issuer, ClientID: "other"}.Codecs([][]byte{fixedSecret}, "k1sso session", 0),
		"another issuer":    Deployment{Issuer: "https://k1.example/x", ClientID: fixedDeployment.ClientID}.Codecs([][]byte{fixedSecret}, "k1sso session", 0),
		"another secret":    fixedDeployment.Codecs([][]byte{[]byte(strings.Repeat("x", 32))}, "k1sso session", 0),
	} {
		if other.Decode("generic", fixedEncoded, &got) == nil {
			t.Errorf("decoded under %s", what)
		}
	}
	if cs.Decode("other", fixedEncoded, &got) == nil {
		t.Error("decoded for another cookie name")
	}
}

// TestDeploymentInfoIsUnambiguous: moving a character between the issuer
// and the client id gives other keys.
func TestDeploymentInfoIsUnambiguous(t *testing.T) {
	a := Deployment{Issuer: "https://k1.example1", ClientID: "2"}.Key(fixedSecret, "p")
	b := Deployment{Issuer: "https://k1.example", ClientID: "12"}.Key(fixedSecret, "p")
	if hex.EncodeToString(a) == hex.EncodeToString(b) {
		t.Fatal("two deployments share a key")
	}
}

// TestCodecsRotation: the first secret encodes; a value of an older secret
// still listed decodes, one of a removed secret does not.
func TestCodecsRotation(t *testing.T) {
	oldS, newS := []byte(strings.Repeat("o", 32)), []byte(strings.Repeat("n", 32))
	type payload struct{ V string }
	v, err := fixedDeployment.Codecs([][]byte{oldS}, "p", 0).Encode("c", payload{"x"})
	if err != nil {
		t.Fatal(err)
	}
	var got payload
	if err := fixedDeployment.Codecs([][]byte{newS, oldS}, "p", 0).Decode("c", v, &got); err != nil || got.V != "x" {
		t.Fatalf("after rotation: %v %+v", err, got)
	}
	if fixedDeployment.Codecs([][]byte{newS}, "p", 0).Decode("c", v, &got) == nil {
		t.Fatal("a removed secret's value decoded")
	}
	v2, _ := fixedDeployment.Codecs([][]byte{newS, oldS}, "p", 0).Encode("c", payload{"y"})
	if fixedDeployment.Codecs([][]byte{oldS}, "p", 0).Decode("c", v2, &got) == nil {
		t.Fatal("the second secret encoded")
	}
}

// TestCodecLimits: a value WriteChunked could not store is not encoded.
func TestCodecLimits(t *testing.T) {
	cs := fixedDeployment.Codecs([][]byte{fixedSecret}, "p", time.Hour)
	if _, err := cs.Encode("c", strings.Repeat("x", MaxLength)); err == nil {
		t.Error("a value longer than MaxLength was encoded")
	}
	v, err := cs.Encode("c", strings.Repeat("x", MaxLength/2))
	if err != nil || len(v) > MaxLength {
		t.Fatalf("a value of half MaxLength: %d bytes, %v", len(v), err)
	}
}
