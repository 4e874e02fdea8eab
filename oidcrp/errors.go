package oidcrp

import "errors"

// Reason says which check a token failed, so that a caller can choose its
// page and log line without reading error strings.
type Reason string

// The reasons of an *Error.
const (
	// ReasonUnavailable: the provider's keys could not be fetched, so the
	// token could not be checked at all. An outage, not a bad token.
	ReasonUnavailable Reason = "unavailable"
	// ReasonSignature: the JWS is malformed, uses an algorithm the
	// provider does not advertise, names no published key, or its
	// signature does not verify.
	ReasonSignature Reason = "signature"
	// ReasonIssuer: iss is not exactly the provider's issuer.
	ReasonIssuer Reason = "issuer"
	// ReasonAudience: aud does not contain the client ID.
	ReasonAudience Reason = "audience"
	// ReasonExpired: exp has passed (beyond the clock skew) or is absent.
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: nbf lies in the future.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonIssuedAt: iat is absent or lies in the future (beyond the
	// clock skew).
	ReasonIssuedAt Reason = "issued_at"
	// ReasonClaimNames: a claim the verifier or the caller reads is also
	// present spelled with other letter case.
	ReasonClaimNames Reason = "claim_names"
	// ReasonClaims: a claim has the wrong JSON type, or a required one is
	// missing.
	ReasonClaims Reason = "claims"
	// ReasonNonce: an ID token's nonce is not the one sent, or a logout
	// token carries one.
	ReasonNonce Reason = "nonce"
	// ReasonAuthorizedPartyMissing: an ID token with several audiences has
	// no azp.
	ReasonAuthorizedPartyMissing Reason = "azp_missing"
	// ReasonAuthorizedParty: azp is not the client ID.
	ReasonAuthorizedParty Reason = "azp"
	// ReasonSubject: sub is missing or longer than 255 characters; for a
	// logout token, neither sub nor sid is present.
	ReasonSubject Reason = "subject"
	// ReasonEvent: a logout token lacks the back-channel logout event.
	ReasonEvent Reason = "event"
)

// Error is a token that failed verification. Use errors.As to read the
// reason; Err says what exactly was wrong, for a log line (it names
// claims and issuers, never the token).
type Error struct {
	Reason Reason
	Err    error
}

// Error is the reason and what exactly was wrong.
func (e *Error) Error() string {
	if e.Err == nil {
		return "oidcrp: " + string(e.Reason)
	}
	return "oidcrp: " + string(e.Reason) + ": " + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ReasonOf returns the reason of err when it is (or wraps) an *Error, and
// "" otherwise.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func fail(r Reason, msg string) *Error { return &Error{Reason: r, Err: errors.New(msg)} }

func failWith(r Reason, err error) *Error { return &Error{Reason: r, Err: err} }
