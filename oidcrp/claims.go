package oidcrp

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// go-oidc decodes a verified JWT's claims with encoding/json, which matches
// member names regardless of letter case and lets the last of "email" and
// "EMAIL" win. JWT claim names are case-sensitive (RFC 7519 §10.1.1), so
// "EMAIL" is another claim: a token that carries a case variant of a claim
// that is read is refused rather than read either way.

// exactClaims decodes a verified token's claims (through decode, go-oidc's
// Claims method) and refuses them when one of names is spelled with other
// letter case.
func exactClaims(decode func(any) error, names ...[]string) (map[string]json.RawMessage, error) {
	var claims map[string]json.RawMessage
	if err := decode(&claims); err != nil {
		return nil, failWith(ReasonClaims, errors.New("the claims are not a JSON object"))
	}
	for k := range claims {
		for _, list := range names {
			for _, name := range list {
				if k != name && strings.EqualFold(k, name) {
					return nil, fail(ReasonClaimNames, "claim "+name+" is spelled with other letter case")
				}
			}
		}
	}
	return claims, nil
}

// numericDate reads a JWT NumericDate claim (RFC 7519 §2: seconds, maybe
// with a fraction); ok is false when the claim is absent.
func numericDate(claims map[string]json.RawMessage, name string) (t time.Time, ok bool, err error) {
	v, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || f < 0 || f > math.MaxInt32*4 {
		return time.Time{}, false, fail(ReasonClaims, "claim "+name+" is not a NumericDate")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}
