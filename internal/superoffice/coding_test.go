package superoffice

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func gzipBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	mustWrite(tb, w, b)
	return buf.Bytes()
}

func zlibBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	mustWrite(tb, w, b)
	return buf.Bytes()
}

func rawDeflateBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		tb.Fatal(err)
	}
	mustWrite(tb, w, b)
	return buf.Bytes()
}

func zstdBytes(tb testing.TB, b []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		tb.Fatal(err)
	}
	mustWrite(tb, w, b)
	return buf.Bytes()
}

func mustWrite(tb testing.TB, w io.WriteCloser, b []byte) {
	tb.Helper()
	if _, err := w.Write(b); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}

// Bombs are built by repeating a compressed 1 MiB unit (gzip members,
// sync-flushed DEFLATE blocks, zstd frames) because compressing 50 MiB with
// the race detector on takes many seconds.
const (
	bombUnit  = 1 << 20
	bombUnits = 50
)

func rawDeflateBomb(tb testing.TB) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(make([]byte, bombUnit)); err != nil {
		tb.Fatal(err)
	}
	// The sync flush ends the unit on a byte boundary with non-final
	// blocks, so copies can follow each other.
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	// A final, empty fixed-Huffman block ends the stream.
	return append(bytes.Repeat(buf.Bytes(), bombUnits), 0x03, 0x00)
}

func zlibBomb(tb testing.TB) []byte {
	raw := rawDeflateBomb(tb)
	// Adler-32 of n zeros is a=1, b=n mod 65521.
	adler := uint32(bombUnit*bombUnits%65521)<<16 | 1
	out := append([]byte{0x78, 0xda}, raw...)
	return append(out, byte(adler>>24), byte(adler>>16), byte(adler>>8), byte(adler))
}

func gzipBomb(tb testing.TB) []byte {
	return bytes.Repeat(gzipBytes(tb, make([]byte, bombUnit)), bombUnits)
}

func zstdBomb(tb testing.TB, singleFrame bool) []byte {
	tb.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer enc.Close()
	if singleFrame {
		// One frame whose header declares the full 50 MiB.
		return enc.EncodeAll(make([]byte, bombUnit*bombUnits), nil)
	}
	return bytes.Repeat(enc.EncodeAll(make([]byte, bombUnit), nil), bombUnits)
}

func TestDecodeEntityBomb(t *testing.T) {
	bombs := []struct {
		name, ce string
		body     []byte
	}{
		{"gzip", "gzip", gzipBomb(t)},
		{"deflate", "deflate", zlibBomb(t)},
		{"raw deflate", "deflate", rawDeflateBomb(t)},
		{"zstd frames", "zstd", zstdBomb(t, false)},
		{"zstd single frame", "zstd", zstdBomb(t, true)},
		{"gzip of gzip", "gzip, gzip", gzipBytes(t, gzipBomb(t))},
	}
	const maxDecoded = 1 << 20
	for _, b := range bombs {
		t.Run(b.name, func(t *testing.T) {
			t.Logf("%d compressed bytes", len(b.body))
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decode(t, b.body, ctJSON, b.ce, maxDecoded)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
			// zstd allocates the declared window (at most the 8 MiB
			// RFC 8878 allows) plus 1 MiB up front; everything else
			// stays near the 1 MiB bound.
			limit := uint64(4 << 20)
			if b.ce == "zstd" {
				limit = 16 << 20
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > limit {
				t.Errorf("allocated %d bytes decoding a %d-byte bomb with a %d-byte bound", got, bombUnit*bombUnits, maxDecoded)
			} else {
				t.Logf("allocated %d bytes", got)
			}
		})
	}
}

// TestBombsAreValid makes sure the bombs above are well-formed streams of
// the full size, so ErrTooLarge is not hiding a decoding error.
func TestBombsAreValid(t *testing.T) {
	if testing.Short() {
		t.Skip("decompresses 300 MiB")
	}
	check := func(name string, r io.Reader, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n, err := io.Copy(io.Discard, r)
		if err != nil || n != bombUnit*bombUnits {
			t.Fatalf("%s: %d bytes, %v", name, n, err)
		}
	}
	gr, err := gzip.NewReader(bytes.NewReader(gzipBomb(t)))
	check("gzip", gr, err)
	zr, err := zlib.NewReader(bytes.NewReader(zlibBomb(t)))
	check("zlib", zr, err)
	check("raw deflate", flate.NewReader(bytes.NewReader(rawDeflateBomb(t))), nil)
	for _, single := range []bool{false, true} {
		zd, err := zstd.NewReader(bytes.NewReader(zstdBomb(t, single)))
		check("zstd", zd, err)
		zd.Close()
	}
	outer, err := gzip.NewReader(bytes.NewReader(gzipBytes(t, gzipBomb(t))))
	if err != nil {
		t.Fatal(err)
	}
	gr, err = gzip.NewReader(outer)
	check("gzip of gzip", gr, err)
}
