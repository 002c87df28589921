package superoffice

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

const (
	// maxCodings bounds stacked content codings ("gzip, identity").
	maxCodings = 2
	// zstdHTTPWindow is the window RFC 8878 lets HTTP zstd senders use; a
	// frame may declare less but not more unless maxDecoded allows it.
	zstdHTTPWindow = 8 << 20
)

type mediaFormat uint8

const (
	formatJSON mediaFormat = iota + 1
	formatXML
)

type coding uint8

const (
	codingIdentity coding = iota
	codingGzip
	codingDeflate
	codingZstd
)

func (c coding) String() string {
	switch c {
	case codingGzip:
		return "gzip"
	case codingDeflate:
		return "deflate"
	case codingZstd:
		return "zstd"
	}
	return "identity"
}

// parseMediaType ignores parameters: the charset is irrelevant because both
// formats are decoded as UTF-8 and anything else fails to parse anyway.
func parseMediaType(contentType string) (mediaFormat, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	typ, sub, ok := strings.Cut(mt, "/")
	if ok && (strings.EqualFold(typ, "application") || strings.EqualFold(typ, "text")) {
		switch {
		case strings.EqualFold(sub, "json") || hasSuffixFold(sub, "+json"):
			return formatJSON, nil
		case strings.EqualFold(sub, "xml") || hasSuffixFold(sub, "+xml"):
			return formatXML, nil
		}
	}
	return 0, fmt.Errorf(errPrefix+"media type %q: %w", clip(mt), ErrUnsupportedMediaType)
}

// hasSuffixFold requires something before the suffix so that "+json" alone
// is not a structured-syntax type.
func hasSuffixFold(s, suffix string) bool {
	return len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// parseCodings returns the codings in header order in a fixed array so the
// common case allocates nothing. Empty list elements are skipped as RFC 9110
// requires.
func parseCodings(contentEncoding string) ([maxCodings]coding, int, error) {
	var out [maxCodings]coding
	n := 0
	for rest, more := contentEncoding, true; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, ",")
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		var c coding
		switch {
		case strings.EqualFold(tok, "identity"):
			c = codingIdentity
		case strings.EqualFold(tok, "gzip"), strings.EqualFold(tok, "x-gzip"):
			c = codingGzip
		case strings.EqualFold(tok, "deflate"):
			c = codingDeflate
		case strings.EqualFold(tok, "zstd"):
			c = codingZstd
		default:
			// br is refused because no brotli decoder is in the module graph.
			return out, 0, fmt.Errorf(errPrefix+"content coding %q: %w", clip(tok), ErrUnsupportedEncoding)
		}
		if n == maxCodings {
			return out, 0, fmt.Errorf(errPrefix+"content codings %q: more than %d: %w", clip(contentEncoding), maxCodings, ErrUnsupportedEncoding)
		}
		out[n] = c
		n++
	}
	return out, n, nil
}

// decodeContent undoes the content codings (the last applied is listed
// last, so it is undone first). Identity bodies are returned as is, without
// a copy; the decoders below only ever read from body.
func decodeContent(body []byte, codings []coding, maxDecoded int64) ([]byte, error) {
	identity := true
	for _, c := range codings {
		if c != codingIdentity {
			identity = false
		}
	}
	if identity {
		if int64(len(body)) > maxDecoded {
			return nil, fmt.Errorf(errPrefix+"body of %d bytes exceeds %d: %w", len(body), maxDecoded, ErrTooLarge)
		}
		return body, nil
	}

	var r io.Reader = bytes.NewReader(body)
	for i := len(codings) - 1; i >= 0; i-- {
		var err error
		switch codings[i] {
		case codingGzip:
			var zr *gzip.Reader
			zr, err = newGzipReader(r)
			if zr != nil && len(body) <= maxPooledGzipBody {
				// A pooled reader keeps its last source until its next
				// use: only a small body may stay referenced so.
				defer gzipReaders.Put(zr)
			}
			r = zr
		case codingDeflate:
			r, err = newDeflateReader(r)
		case codingZstd:
			var zr *zstd.Decoder
			zr, err = newZstdReader(r, maxDecoded)
			if zr != nil {
				defer zr.Close()
			}
			r = zr
		}
		if err != nil {
			return nil, codingError(codings[i].String(), err)
		}
	}
	data, err := readLimited(r, maxDecoded, len(body))
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, codingError(codingList(codings), err)
	}
	return data, nil
}

// gzipReaders recycles gzip readers: each holds a DEFLATE decoder of
// some 40 KiB, which Reset keeps for the next body.
var gzipReaders sync.Pool

// maxPooledGzipBody bounds the bodies whose reader goes back to the pool.
const maxPooledGzipBody = 64 << 10

// newGzipReader is a reader of r from the pool, or a new one; it is
// returned with an error only when it can go back to the pool.
func newGzipReader(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := gzipReaders.Get().(*gzip.Reader); ok {
		return zr, zr.Reset(r)
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	return zr, nil
}

// newZstdReader is one synchronous decoder (no goroutines, no per-CPU
// buffers for a body read once) whose history buffer, sized from the
// frame's declared window, is bounded too.
func newZstdReader(r io.Reader, maxDecoded int64) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(uint64(max(zstdHTTPWindow, min(maxDecoded, math.MaxInt32)))),
	)
}

// codingList names a stack of codings for an error message; the failing
// layer is not known once the readers are chained.
func codingList(codings []coding) string {
	if len(codings) == 1 {
		return codings[0].String()
	}
	parts := make([]string, len(codings))
	for i, c := range codings {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

func codingError(label string, err error) error {
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// A single-segment frame whose declared content exceeds the window
		// bound, which is never below maxDecoded.
		return fmt.Errorf(errPrefix+"%s: %w", label, ErrTooLarge)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf(errPrefix+"%s: %w", label, err)
}

// newDeflateReader follows RFC 9110 (deflate means zlib-wrapped) but falls
// back to raw DEFLATE when the first two bytes are not a valid zlib header,
// because some servers (old IIS among them) send raw streams.
func newDeflateReader(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 512)
	if h, err := br.Peek(2); err == nil && isZlibHeader(h[0], h[1]) {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

// readLimited reads at most maxDecoded+1 bytes, growing its buffer no
// further than that, so a bomb is detected without holding more than the bound.
func readLimited(r io.Reader, maxDecoded int64, encodedLen int) ([]byte, error) {
	limit := maxDecoded
	if limit < math.MaxInt64 {
		limit++
	}
	// Compressed JSON/XML typically expands 4-10x; start near that to
	// avoid most regrowth without trusting the ratio.
	initial := min(limit, max(512, 8*int64(encodedLen)))
	buf := make([]byte, 0, initial)
	lr := io.LimitReader(r, limit)
	for {
		if len(buf) == cap(buf) {
			if int64(cap(buf)) >= limit {
				break
			}
			grown := make([]byte, len(buf), min(limit, 2*int64(cap(buf))))
			copy(grown, buf)
			buf = grown
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > maxDecoded {
		return nil, fmt.Errorf(errPrefix+"decoded body exceeds %d bytes: %w", maxDecoded, ErrTooLarge)
	}
	return buf, nil
}
