package inject

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k1sso/k1sso/internal/codingtest"
)

// testKind is one way a caller places its markup: with afterID "" before
// </body> (a login link), else after that element or, without it, fixed
// before </body> (a launcher).
type testKind struct {
	afterID string
	sn      snippets
}

var (
	loginLink = testKind{"", snippets{after: []byte("[INLINE]"), bodyEnd: []byte("[LINK]")}}
	launcher  = testKind{"user-name", snippets{after: []byte("[INLINE]"), bodyEnd: []byte("[FIXED]")}}
)

// rewrite runs page through a rewriter in the given pieces.
func rewrite(t testing.TB, kind testKind, pieces ...[]byte) (string, *rewriter) {
	t.Helper()
	var out bytes.Buffer
	rw := newRewriter(&out, kind.afterID, kind.sn)
	for _, p := range pieces {
		if _, err := rw.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := rw.close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), rw
}

// underlying is the writer a Writer wraps, as Caddy's server hands it
// over: it records what reaches it through each of the optional
// interfaces http.ResponseController and Push look for.
type underlying struct {
	*httptest.ResponseRecorder
	mu        sync.Mutex
	flushes   int
	pushed    []string
	deadline  time.Time
	readFroms int
	early     []int // 1xx answers before the final one
}

func newUnderlying() *underlying { return &underlying{ResponseRecorder: httptest.NewRecorder()} }

func (u *underlying) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ResponseRecorder.Write(p)
}

// WriteHeader keeps 1xx answers apart, as a server sends them ahead of
// the final one (the recorder would take them as final).
func (u *underlying) WriteHeader(status int) {
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		u.early = append(u.early, status)
		return
	}
	u.ResponseRecorder.WriteHeader(status)
}

func (u *underlying) Flush() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.flushes++
	u.ResponseRecorder.Flush()
}

func (u *underlying) Push(target string, _ *http.PushOptions) error {
	u.pushed = append(u.pushed, target)
	return nil
}

func (u *underlying) SetWriteDeadline(d time.Time) error {
	u.deadline = d
	return nil
}

// body is what reached the underlying writer so far.
func (u *underlying) body() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return bytes.Clone(u.Body.Bytes())
}

func (u *underlying) ReadFrom(src io.Reader) (int64, error) {
	u.readFroms++
	return io.Copy(u.ResponseRecorder, src)
}

// onlyReader hides WriteTo, so io.Copy uses the writer's ReadFrom.
type onlyReader struct{ io.Reader }

// testPage is what the writer tests inject.
var testPage = Page{CSS: "#x{color:red}", AfterID: "user-name", After: "[AFTER]", BeforeBodyEnd: "[END]"}

// serve runs handler as the rest of a route through a Writer for page on
// a fresh underlying writer, closes it, and returns the underlying
// writer, the Writer and Close's error.
func serve(t testing.TB, page Page, handler func(w http.ResponseWriter)) (*underlying, *Writer, error) {
	t.Helper()
	u := newUnderlying()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	w := New(u, r, func() Page { return page })
	w.nonce = func() string { return "N" }
	defer w.Abort()
	handler(w)
	err := w.Close()
	return u, w, err
}

// htmlPage is an upstream writing body as a 200 page in coding, with the
// headers an upstream such as http.ServeContent sends.
func htmlPage(t testing.TB, coding string, body string, extra ...string) func(w http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		b := compress(t, coding, []byte(body))
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		if coding != "" {
			h.Set("Content-Encoding", coding)
		}
		h.Set("Content-Length", strconv.Itoa(len(b)))
		h.Set("ETag", `"v1"`)
		h.Set("Accept-Ranges", "bytes")
		for i := 0; i+1 < len(extra); i += 2 {
			h.Add(extra[i], extra[i+1])
		}
		w.WriteHeader(http.StatusOK)
		w.Write(b)
	}
}

// scriptSources is the source list that governs script elements in one
// policy.
func scriptSources(policy string) string {
	best, rank := "", 0
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		r := map[string]int{"script-src-elem": 3, "script-src": 2, "default-src": 1}[strings.ToLower(f[0])]
		if r > rank {
			best, rank = strings.Join(f[1:], " "), r
		}
	}
	return best
}

// compress encodes b in coding ("", "identity": as it is).
func compress(t testing.TB, coding string, b []byte) []byte { return codingtest.Compress(t, coding, b) }

// decompress decodes b from coding.
func decompress(t testing.TB, coding string, b []byte) []byte {
	return codingtest.Decompress(t, coding, b)
}
