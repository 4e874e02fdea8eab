package sessioncookie

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Size limits of a chunked value.
const (
	// ChunkSize is the most one chunk cookie holds: under the ~4096 bytes
	// per cookie (name and attributes included) that browsers keep.
	ChunkSize = 3800
	// MaxChunks is how many cookies one value may take: browsers cap the
	// cookies per site and servers the size of the Cookie header.
	MaxChunks = 4
	// MaxLength is the longest value WriteChunked stores.
	MaxLength = ChunkSize * MaxChunks
)

// ErrTooLarge is returned when a value needs more chunks than a browser
// can be expected to send back.
var ErrTooLarge = errors.New("session cookie too large")

// chunkName is the name of chunk i (i ≥ 1) of a chunked cookie.
func chunkName(name string, i int) string { return name + "-" + strconv.Itoa(i) }

// WriteChunked sets value as one cookie, or as chunks name, name-1, ...
// when it is larger than one cookie may be. A chunked first cookie starts
// with "<count>." so stale extra chunks are ignored. Chunks the request had
// beyond the new count are expired. The cookies are made by New.
func WriteChunked(w http.ResponseWriter, r *http.Request, name, value string, secure bool, maxAge time.Duration) error {
	n := (len(value) + ChunkSize - 1) / ChunkSize
	if n > MaxChunks {
		return ErrTooLarge
	}
	if n <= 1 {
		http.SetCookie(w, New(name, value, secure, maxAge))
	} else {
		for i := 0; i < n; i++ {
			part := value[i*ChunkSize : min((i+1)*ChunkSize, len(value))]
			cn := name
			if i == 0 {
				part = strconv.Itoa(n) + "." + part
			} else {
				cn = chunkName(name, i)
			}
			http.SetCookie(w, New(cn, part, secure, maxAge))
		}
	}
	for i := max(n, 1); i < MaxChunks; i++ {
		cn := chunkName(name, i)
		if _, err := r.Cookie(cn); err == nil {
			Expire(w, cn, secure)
		}
	}
	return nil
}

// ExpireChunked drops a chunked cookie and every chunk it may have had,
// whether or not the request still shows them (a proxy may have stripped
// them for the upstream already).
func ExpireChunked(w http.ResponseWriter, name string, secure bool) {
	Expire(w, name, secure)
	for i := 1; i < MaxChunks; i++ {
		Expire(w, chunkName(name, i), secure)
	}
}

// ReadChunked reassembles a value written by WriteChunked, reading every
// chunk by its exact name (Value). It returns "" when the cookie is absent
// or its chunks are inconsistent. A value of one cookie is returned as it
// is: a "<count>." prefix needs a dot within its first three bytes, which
// no base64 value (what Codecs.Encode makes) has.
func ReadChunked(r *http.Request, name string) string {
	first := Value(r, name)
	if first == "" {
		return ""
	}
	dot := strings.IndexByte(first, '.')
	if dot < 0 || dot > 2 {
		return first
	}
	n, err := strconv.Atoi(first[:dot])
	if err != nil || n < 2 || n > MaxChunks {
		return ""
	}
	var b strings.Builder
	b.WriteString(first[dot+1:])
	for i := 1; i < n; i++ {
		part := Value(r, chunkName(name, i))
		if part == "" {
			return ""
		}
		b.WriteString(part)
	}
	return b.String()
}
