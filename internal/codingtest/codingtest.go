// Package codingtest compresses and decompresses bodies in the HTTP content
// codings k1sso's injector handles, for tests of the injector and of the
// handler that uses it. It imports nothing of k1sso, so any package's tests
// can use it.
package codingtest

import (
	"bytes"
	"io"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compress encodes b in coding: "" or "identity" (as it is), "gzip",
// "x-gzip", "zstd" or "br".
func Compress(tb testing.TB, coding string, b []byte) []byte {
	tb.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "", "identity":
		return b
	case "gzip", "x-gzip":
		w = gzip.NewWriter(&out)
	case "zstd":
		zw, err := zstd.NewWriter(&out)
		if err != nil {
			tb.Fatal(err)
		}
		w = zw
	case "br":
		w = brotli.NewWriter(&out)
	default:
		tb.Fatalf("no test encoder for %q", coding)
	}
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// Decompress decodes b from coding (as Compress names them).
func Decompress(tb testing.TB, coding string, b []byte) []byte {
	tb.Helper()
	var r io.Reader
	switch coding {
	case "", "identity":
		return b
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			tb.Fatalf("gzip body: %v", err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			tb.Fatal(err)
		}
		defer zr.Close()
		r = zr
	case "br":
		r = brotli.NewReader(bytes.NewReader(b))
	default:
		tb.Fatalf("no test decoder for %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("decoding %s body: %v", coding, err)
	}
	return out
}
