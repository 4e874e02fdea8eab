package sessioncookie

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// carry returns a request that sends back the cookies of prev (nil: none)
// as a response updated them: those it set replaced, those it deleted
// gone, as a browser would.
func carry(prev *http.Request, rec *httptest.ResponseRecorder) *http.Request {
	jar := map[string]string{}
	var order []string
	if prev != nil {
		for _, c := range prev.Cookies() {
			jar[c.Name] = c.Value
			order = append(order, c.Name)
		}
	}
	for _, c := range rec.Result().Cookies() {
		if _, ok := jar[c.Name]; !ok {
			order = append(order, c.Name)
		}
		if c.MaxAge < 0 {
			delete(jar, c.Name)
		} else {
			jar[c.Name] = c.Value
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	for _, n := range order {
		if v, ok := jar[n]; ok {
			r.AddCookie(&http.Cookie{Name: n, Value: v})
		}
	}
	return r
}

// value is a cookie-safe value of n bytes that differs at every position
// of a chunk, so a misplaced chunk cannot reassemble to it.
func value(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[(i*7+i/len(alphabet))%len(alphabet)]
	}
	return string(b)
}

// TestChunkedRoundTrip: a value of any size up to MaxLength comes back as
// it was, in as few cookies as fit and none larger than a browser keeps.
func TestChunkedRoundTrip(t *testing.T) {
	for _, n := range []int{1, 100, ChunkSize, ChunkSize + 1, 2*ChunkSize + 7, MaxLength - 1, MaxLength} {
		v := value(n)
		rec := httptest.NewRecorder()
		if err := WriteChunked(rec, httptest.NewRequest("GET", "/", nil), "__Host-s", v, true, time.Hour); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		cs := rec.Result().Cookies()
		if want := (n + ChunkSize - 1) / ChunkSize; len(cs) != want {
			t.Errorf("%d bytes in %d cookies, want %d", n, len(cs), want)
		}
		for i, c := range cs {
			if len(c.Value) > ChunkSize+len("4.") {
				t.Errorf("%d bytes: chunk %s is %d bytes", n, c.Name, len(c.Value))
			}
			if want := "__Host-s"; i > 0 {
				want += "-" + strconv.Itoa(i)
				if c.Name != want {
					t.Errorf("chunk %d named %q, want %q", i, c.Name, want)
				}
			} else if c.Name != want {
				t.Errorf("first cookie named %q", c.Name)
			}
			if !c.Secure || !c.HttpOnly || c.MaxAge != 3600 {
				t.Errorf("chunk %s: attributes %+v", c.Name, c)
			}
		}
		if got := ReadChunked(carry(nil, rec), "__Host-s"); got != v {
			t.Errorf("%d bytes came back as %d bytes", n, len(got))
		}
	}
}

// TestChunkedTooLarge: a value beyond MaxChunks chunks is refused and
// nothing is set.
func TestChunkedTooLarge(t *testing.T) {
	rec := httptest.NewRecorder()
	err := WriteChunked(rec, httptest.NewRequest("GET", "/", nil), "s", value(MaxLength+1), false, time.Hour)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a value over MaxLength: %v", err)
	}
	if cs := rec.Result().Cookies(); len(cs) != 0 {
		t.Fatalf("cookies set for a refused value: %v", cs)
	}
}

// TestChunkedShrinks: writing a shorter value expires the chunks of the
// longer one that the request still carries, and only those.
func TestChunkedShrinks(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := WriteChunked(rec, httptest.NewRequest("GET", "/", nil), "s", value(3*ChunkSize), false, 0); err != nil {
		t.Fatal(err)
	}
	long := carry(nil, rec)
	for _, tt := range []struct {
		n       int
		expired []string
	}{{10, []string{"s-1", "s-2"}}, {ChunkSize + 1, []string{"s-2"}}, {3 * ChunkSize, nil}} {
		rec := httptest.NewRecorder()
		if err := WriteChunked(rec, long, "s", value(tt.n), false, 0); err != nil {
			t.Fatal(err)
		}
		var expired []string
		for _, c := range rec.Result().Cookies() {
			if c.MaxAge < 0 {
				expired = append(expired, c.Name)
			}
		}
		if strings.Join(expired, ",") != strings.Join(tt.expired, ",") {
			t.Errorf("%d bytes over 3 chunks: expired %v, want %v", tt.n, expired, tt.expired)
		}
		if got := ReadChunked(carry(long, rec), "s"); got != value(tt.n) {
			t.Errorf("%d bytes after 3 chunks came back as %d bytes", tt.n, len(got))
		}
		// A browser that kept the stale chunks: the count in the first
		// cookie still says which belong to the value.
		kept := httptest.NewRecorder()
		for _, c := range rec.Result().Cookies() {
			if c.MaxAge >= 0 {
				http.SetCookie(kept, c)
			}
		}
		if got := ReadChunked(carry(long, kept), "s"); got != value(tt.n) {
			t.Errorf("%d bytes beside stale chunks came back as %d bytes", tt.n, len(got))
		}
	}
}

// TestExpireChunked: every chunk a value may have had is deleted, whether
// or not the request shows it.
func TestExpireChunked(t *testing.T) {
	rec := httptest.NewRecorder()
	ExpireChunked(rec, "__Host-s", true)
	var names []string
	for _, c := range rec.Result().Cookies() {
		if c.MaxAge != -1 || !c.Secure {
			t.Errorf("%s: not a Secure deletion: %+v", c.Name, c)
		}
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "__Host-s,__Host-s-1,__Host-s-2,__Host-s-3" {
		t.Errorf("expired %s", got)
	}
}

// TestReadChunkedInconsistent: a chunk count that is no number, out of
// range, or names a chunk that is missing or empty, gives no value; a
// value without a count within its first three bytes is one cookie.
func TestReadChunkedInconsistent(t *testing.T) {
	for _, tt := range []struct{ header, want string }{
		{"", ""},
		{"s=abc", "abc"},
		{"s=abc.def", "abc.def"},
		{"s=1.ab", ""},
		{"s=5.a; s-1=b; s-2=c; s-3=d; s-4=e", ""},
		{"s=99.; s-1=", ""},
		{"s=x.ab; s-1=cd", ""},
		{"s=-2.ab; s-1=cd", ""},
		{"s=3.ab; s-1=cd", ""},
		{"s=3.ab; s-1=cd; s-2=", ""},
		{"s=3.ab; s-2=ef; s-1=cd", "abcdef"},
		{"s=2.; s-1=cd", "cd"},
		{"s=4.a; s-1=b; s-2=c; s-3=d; s-4=e", "abcd"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tt.header != "" {
			r.Header.Set("Cookie", tt.header)
		}
		if got := ReadChunked(r, "s"); got != tt.want {
			t.Errorf("Cookie %q: %q, want %q", tt.header, got, tt.want)
		}
	}
}

// FuzzChunked: whatever cookie-safe value of up to MaxLength bytes is
// written, it is read back as it was.
func FuzzChunked(f *testing.F) {
	f.Add("abc", 1)
	f.Add("xyz", ChunkSize+1)
	f.Add("0123456789", MaxLength)
	f.Fuzz(func(t *testing.T, seed string, n int) {
		if seed == "" || n <= 0 || n > MaxLength || !validCookieValue(seed) || strings.ContainsAny(seed, " ,") {
			return
		}
		v := strings.Repeat(seed, n/len(seed)+1)[:n]
		rec := httptest.NewRecorder()
		if err := WriteChunked(rec, httptest.NewRequest("GET", "/", nil), "s", v, false, 0); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got := ReadChunked(carry(nil, rec), "s")
		if got != v && !(len(v) <= ChunkSize && strings.IndexByte(v, '.') >= 0 && strings.IndexByte(v, '.') <= 2) {
			t.Fatalf("%d bytes of %q came back as %q", n, seed, got)
		}
	})
}
