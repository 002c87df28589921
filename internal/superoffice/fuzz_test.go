package superoffice

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func FuzzDecodeEntity(f *testing.F) {
	jsonBody := readFixture(f, "reset.json")
	xmlBody := readFixture(f, "reset.xml")
	f.Add(jsonBody, ctJSON, "")
	f.Add(xmlBody, ctXML, "")
	f.Add(gzipBytes(f, jsonBody), ctJSON, "gzip")
	f.Add(zlibBytes(f, xmlBody), ctXML, "deflate")
	f.Add(rawDeflateBytes(f, jsonBody), ctJSON, "deflate")
	f.Add(zstdBytes(f, xmlBody), ctXML, "zstd")
	f.Add(gzipBytes(f, gzipBytes(f, jsonBody)), ctJSON, "gzip, x-gzip")
	f.Add([]byte("null"), ctJSON, "")
	f.Add([]byte(`{"Message":"x","MessageDetail":"y"}`), "text/json", "identity")
	f.Add([]byte(`{"ChatSessionId": 1, "Status": 4, "WhenIdle": "2019-07-04T02:30:52"}`), ctJSON, "")
	f.Add([]byte(`<!DOCTYPE a><ChatSessionEntity/>`), "text/xml", "")
	f.Add([]byte(`<ChatSessionEntity xmlns:i="x"><ChatSessionId>1</ChatSessionId><User i:nil="true"/></ChatSessionEntity>`), ctXML, "")
	f.Fuzz(func(t *testing.T, body []byte, ct, ce string) {
		orig := bytes.Clone(body)
		e, err := DecodeEntity(body, ct, ce, DecodeOptions{MaxDecoded: 1 << 16, Customer: CustomerFields[:]})
		if !bytes.Equal(body, orig) {
			t.Fatal("body modified")
		}
		if (e == nil) == (err == nil) {
			t.Fatalf("entity %v, error %v", e, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), errPrefix) {
				t.Fatalf("error lacks context: %v", err)
			}
			return
		}
		cs := e.Session
		for _, w := range []time.Time{cs.WhenRequested, cs.WhenStarted, cs.WhenEnded, cs.WhenIdle} {
			if w.Location() != time.UTC {
				t.Fatalf("time %v not in UTC", w)
			}
		}
	})
}

func BenchmarkDecodeEntityJSON(b *testing.B) {
	body := readFixture(b, "reset.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntity(body, ctJSON, "", DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEntityJSONGzip(b *testing.B) {
	body := gzipBytes(b, readFixture(b, "reset.json"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntity(body, ctJSON, "gzip", DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEntityXML(b *testing.B) {
	body := readFixture(b, "reset.xml")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntity(body, ctXML, "", DecodeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
