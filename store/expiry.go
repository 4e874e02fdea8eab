package store

import (
	"encoding/binary"
	"time"
)

// ExpiryLen is the length of the prefix WrapExpiry adds. A stored value
// shorter than it is being written, not expired.
const ExpiryLen = 8

// WrapExpiry prefixes a value with its expiry in unix seconds (0: never),
// for a store without expiry of its own. The expiry is rounded up: an
// entry never expires before its ttl (a recheck claim that lapsed early
// would let a second instance ask K1 in the same interval).
func WrapExpiry(v []byte, ttl time.Duration, now time.Time) []byte {
	b := make([]byte, ExpiryLen+len(v))
	if ttl > 0 {
		exp := now.Add(ttl)
		if t := exp.Truncate(time.Second); t.Before(exp) {
			exp = t.Add(time.Second)
		}
		binary.BigEndian.PutUint64(b, uint64(exp.Unix()))
	}
	copy(b[ExpiryLen:], v)
	return b
}

// UnwrapExpiry returns the value WrapExpiry wrapped, and false when it has
// expired at now or is too short to hold an expiry.
func UnwrapExpiry(b []byte, now time.Time) ([]byte, bool) {
	if len(b) < ExpiryLen {
		return nil, false
	}
	exp := int64(binary.BigEndian.Uint64(b))
	if exp != 0 && now.Unix() >= exp {
		return nil, false
	}
	return b[ExpiryLen:], true
}
