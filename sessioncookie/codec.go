package sessioncookie

import (
	"crypto/hkdf"
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/gorilla/securecookie"
)

// Deployment is what cookie keys are bound to besides the secret: the
// OpenID issuer and the client id. Operators reuse a cookie secret across
// sites (a staging copy, another application behind another client); a
// cookie of one of them must be no cookie at all on the other. Rotation is
// unaffected: every secret is bound to the same deployment.
type Deployment struct {
	// Issuer is the OpenID provider's issuer URL.
	Issuer string
	// ClientID is the relying party's client id at that issuer.
	ClientID string
}

// Key derives a 32-byte key for one purpose: HKDF-SHA256 of the secret with
// the purpose and the deployment as its info. The parts are
// length-prefixed, so no choice of issuer and client id yields another's
// info. The derivation is fixed: changing it would end every cookie in use.
func (d Deployment) Key(secret []byte, purpose string) []byte {
	info := purpose + "\x00" + strconv.Itoa(len(d.Issuer)) + ":" + d.Issuer + strconv.Itoa(len(d.ClientID)) + ":" + d.ClientID
	k, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		panic(err) // only for lengths hkdf cannot produce; 32 always works
	}
	return k
}

// Codec returns a JSON codec whose MAC and encryption keys are derived for
// purpose (as "<purpose> mac" and "<purpose> enc"), so that a cookie of one
// purpose can never be decoded as another. maxAge 0 leaves expiry to the
// caller, who checks it on the decoded value. Encoded values are limited to
// what WriteChunked can store.
func (d Deployment) Codec(secret []byte, purpose string, maxAge time.Duration) *securecookie.SecureCookie {
	sc := securecookie.New(d.Key(secret, purpose+" mac"), d.Key(secret, purpose+" enc"))
	sc.SetSerializer(securecookie.JSONEncoder{})
	sc.MaxAge(int(maxAge / time.Second))
	sc.MaxLength(MaxLength)
	return sc
}

// Codecs returns the codecs of every secret for one purpose, in order: the
// first secret encodes, all decode, so a secret can be rotated in.
func (d Deployment) Codecs(secrets [][]byte, purpose string, maxAge time.Duration) Codecs {
	cs := make(Codecs, 0, len(secrets))
	for _, secret := range secrets {
		cs = append(cs, d.Codec(secret, purpose, maxAge))
	}
	return cs
}

// Codecs are the codecs of one purpose under rotating secrets, the current
// one first. The cookie name is part of what is signed: a value encoded for
// one name does not decode under another.
type Codecs []securecookie.Codec

// Encode signs and encrypts value for the cookie name with the first codec.
func (c Codecs) Encode(name string, value any) (string, error) {
	return securecookie.EncodeMulti(name, value, c...)
}

// Decode verifies and decrypts a value encoded for the cookie name by any
// of the codecs into dst.
func (c Codecs) Decode(name, encoded string, dst any) error {
	return securecookie.DecodeMulti(name, encoded, dst, c...)
}
