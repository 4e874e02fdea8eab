package caddymodule

import (
	"strconv"
	"unicode/utf8"
)

// appendAssertionPayload appends the JSON claims of an X-K1-Assertion:
// aud, bms_user, email, exp, iat, iss, roles, sub, tenant, in that order.
// sign and encode both use it, so a payload rebuilt for a request is
// byte-identical to the one signed.
func appendAssertionPayload(dst []byte, issuer, sub, email string, acc *account, iat, exp int64) []byte {
	dst = append(dst, `{"aud":`...)
	dst = appendJSONString(dst, assertionAudience)
	dst = append(dst, `,"bms_user":`...)
	dst = appendJSONString(dst, acc.BMSUser)
	dst = append(dst, `,"email":`...)
	dst = appendJSONString(dst, email)
	dst = append(dst, `,"exp":`...)
	dst = strconv.AppendInt(dst, exp, 10)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, iat, 10)
	dst = append(dst, `,"iss":`...)
	dst = appendJSONString(dst, issuer)
	dst = append(dst, `,"roles":[`...)
	for i, role := range acc.Roles {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, role)
	}
	dst = append(dst, `],"sub":`...)
	dst = appendJSONString(dst, sub)
	dst = append(dst, `,"tenant":`...)
	dst = appendJSONString(dst, acc.Tenant)
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Like encoding/json, it
// replaces invalid UTF-8 with U+FFFD, so the result is always valid JSON
// whatever K1 or the users file put in a claim; unlike it, it does not
// escape <, > and &, which are harmless in a header.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
