package inject

import (
	"io"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// encoder compresses the rewritten page again in the upstream's coding.
type encoder interface {
	io.Writer
	Flush() error
	Close() error
}

// zstdMaxWindow bounds the memory a zstd page may make the decoder take;
// pages compressed with a larger window fail to decode (the response is
// cut), rather than costing the proxy unbounded memory.
const zstdMaxWindow = 8 << 20

func newEncoder(coding string, w io.Writer) encoder {
	if coding == "br" {
		// Quality 4 with a 1 MiB window: fast, and bounded memory.
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: 4, LGWin: 20})
	}
	if coding == "zstd" {
		// Options that cannot fail; the error is always nil here.
		e, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(zstd.SpeedFastest))
		return e
	}
	g, _ := gzip.NewWriterLevel(w, gzip.DefaultCompression) // a valid level never fails
	return g
}

// decoder decompresses what the upstream writes. The standard decoders
// pull from a reader, while the upstream pushes through Write, so they run
// in a goroutine behind a pipe; the pipe hands over one write at a time and
// keeps memory bounded.
type decoder struct {
	pw   *io.PipeWriter
	done chan error
}

func startDecoder(coding string, dst io.Writer) *decoder {
	pr, pw := io.Pipe()
	d := &decoder{pw: pw, done: make(chan error, 1)}
	go func() {
		err := decode(coding, pr, dst)
		// Unblock the writer if decoding stopped early.
		if err != nil {
			_ = pr.CloseWithError(err)
		} else {
			_ = pr.Close()
		}
		d.done <- err
	}()
	return d
}

func decode(coding string, src io.Reader, dst io.Writer) error {
	if coding == "br" {
		_, err := io.Copy(dst, brotli.NewReader(src))
		return err
	}
	if coding == "zstd" {
		zd, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return err
		}
		defer zd.Close()
		_, err = io.Copy(dst, zd)
		return err
	}
	zr, err := gzip.NewReader(src)
	if err == io.EOF {
		return nil // an empty body
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, zr)
	return err
}
