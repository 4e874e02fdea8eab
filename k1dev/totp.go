package k1dev

import (
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpOpts are K1's authenticator settings: 30 s period, one period of skew
// either side, 6 digits, SHA1 (what authenticator apps use).
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// validCode reports whether code is the current TOTP code of secret (within
// the skew). Codes are not single-use: tests log in repeatedly within 30 s.
func validCode(secret, code string, now time.Time) bool {
	ok, err := totp.ValidateCustom(code, secret, now.UTC(), totpOpts)
	return err == nil && ok
}

// TOTP returns the current 6-digit authenticator code of username.
func (s *Server) TOTP(username string) (string, error) {
	u := s.cfg.user(username)
	if u == nil {
		return "", fmt.Errorf("unknown user %q", username)
	}
	return CurrentCode(u.TOTPSecret)
}

// CurrentCode returns the current 6-digit code of a base32 TOTP secret.
func CurrentCode(secret string) (string, error) {
	return totp.GenerateCodeCustom(secret, time.Now().UTC(), totp.ValidateOpts{
		Period: totpOpts.Period, Digits: totpOpts.Digits, Algorithm: totpOpts.Algorithm,
	})
}
