package superoffice

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// errorCase is a body DecodeEntity must refuse.
type errorCase struct {
	name, ct, ce string
	body         string
	maxDecoded   int64
	want         error  // sentinel, or nil for "some other error"
	wantText     string // substring of the message, optional
}

// runErrorCases checks that each case fails with its sentinel (or none
// of them) and says what failed.
func runErrorCases(t *testing.T, tests []errorCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, []byte(tt.body), tt.ct, tt.ce, tt.maxDecoded)
			if err == nil {
				t.Fatal("expected an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %q is not %q", err, tt.want)
			}
			if tt.want == nil {
				for _, sentinel := range []error{ErrNoEntity, ErrUnsupportedMediaType, ErrUnsupportedEncoding, ErrTooLarge} {
					if errors.Is(err, sentinel) {
						t.Fatalf("error %q unexpectedly is %q", err, sentinel)
					}
				}
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("error %q does not mention %q", err, tt.wantText)
			}
		})
	}
}

// TestDecodeEntityErrorsJSON: bodies without an entity and JSON that is
// not a well-formed ChatSessionEntity.
func TestDecodeEntityErrorsJSON(t *testing.T) {
	runErrorCases(t, []errorCase{
		{name: "empty body", ct: ctJSON, body: "", want: ErrNoEntity},
		{name: "empty body without content type", ct: "", body: "", want: ErrNoEntity},
		{name: "blank body", ct: ctJSON, body: " \r\n\t", want: ErrNoEntity},
		{name: "json null", ct: ctJSON, body: "null", want: ErrNoEntity},
		{name: "json null spaced", ct: ctJSON, body: " null\n", want: ErrNoEntity},
		{name: "agents failure", ct: ctJSON, body: `{"Message":"x","MessageDetail":"y"}`, want: ErrNoEntity},
		{name: "rest error", ct: ctJSON, body: `{"Error": true, "ErrorType": "SoNotFoundException", "ErrorMessage": "not found"}`, want: ErrNoEntity},
		{name: "empty object", ct: ctJSON, body: `{}`, want: ErrNoEntity},
		{name: "null id", ct: ctJSON, body: `{"ChatSessionId": null, "TopicId": 1}`, want: ErrNoEntity},
		{name: "malformed json", ct: ctJSON, body: `{"ChatSessionId": 427,`, wantText: "JSON"},
		{name: "json trailing garbage", ct: ctJSON, body: `{"ChatSessionId": 427} x`, wantText: "JSON"},
		{name: "json array", ct: ctJSON, body: `[{"ChatSessionId": 427}]`, wantText: "JSON"},
		{name: "json id as string", ct: ctJSON, body: `{"ChatSessionId": "427"}`, wantText: "ChatSessionId"},
		{name: "json id out of range", ct: ctJSON, body: `{"ChatSessionId": 4294967296}`, wantText: "ChatSessionId"},
		{name: "json user not object", ct: ctJSON, body: `{"ChatSessionId": 1, "User": 9}`, wantText: "JSON"},
		{name: "json status object", ct: ctJSON, body: `{"ChatSessionId": 1, "Status": {}}`, wantText: "Status"},
		{name: "json status out of range", ct: ctJSON, body: `{"ChatSessionId": 1, "Status": 12}`, wantText: "Status"},
		{name: "json status negative", ct: ctJSON, body: `{"ChatSessionId": 1, "Status": -1}`, wantText: "Status"},
		{name: "json status fraction", ct: ctJSON, body: `{"ChatSessionId": 1, "Status": 4.5}`, wantText: "Status"},
		{name: "json flags bool", ct: ctJSON, body: `{"ChatSessionId": 1, "Flags": true}`, wantText: "Flags"},
		{name: "json date number", ct: ctJSON, body: `{"ChatSessionId": 1, "WhenEnded": 0}`, wantText: "WhenEnded"},
		{name: "json date garbage", ct: ctJSON, body: `{"ChatSessionId": 1, "WhenIdle": "yesterday"}`, wantText: "WhenIdle"},
		{name: "json date too long", ct: ctJSON, body: `{"ChatSessionId": 1, "WhenStarted": "` + strings.Repeat("9", 100) + `"}`, wantText: "WhenStarted"},
		{name: "default limit", ct: ctJSON, body: " " + strings.Repeat(" ", 1<<20) + "null", want: ErrTooLarge},
	})
}

// TestDecodeEntityErrorsXML: XML that is not a well-formed
// ChatSessionEntity, DTDs and documents that are not one.
func TestDecodeEntityErrorsXML(t *testing.T) {
	runErrorCases(t, []errorCase{
		{name: "malformed xml", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>427</ChatSessionId>`, wantText: "XML"},
		{name: "xml mismatched tags", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>427</TopicId></ChatSessionEntity>`, wantText: "XML"},
		{name: "xml dtd", ct: ctXML, body: `<?xml version="1.0"?><!DOCTYPE ChatSessionEntity [<!ENTITY x "427">]><ChatSessionEntity><ChatSessionId>&x;</ChatSessionId></ChatSessionEntity>`, wantText: "DTD"},
		{name: "xml doctype only", ct: ctXML, body: `<!DOCTYPE ChatSessionEntity SYSTEM "file:///etc/passwd"><ChatSessionEntity><ChatSessionId>1</ChatSessionId></ChatSessionEntity>`, wantText: "DTD"},
		{name: "xml trailing dtd", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>1</ChatSessionId></ChatSessionEntity><!DOCTYPE x>`, wantText: "DTD"},
		{name: "xml second root", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>1</ChatSessionId></ChatSessionEntity><ChatSessionEntity/>`, wantText: "after the root"},
		{name: "xml text before root", ct: ctXML, body: `x<ChatSessionEntity/>`, wantText: "before the root"},
		{name: "xml undefined entity", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>&x;</ChatSessionId></ChatSessionEntity>`, wantText: "XML"},
		{name: "xml other root", ct: ctXML, body: `<ChatSession><ChatSessionId>1</ChatSessionId></ChatSession>`, want: ErrNoEntity},
		{name: "xml nil root", ct: ctXML, body: `<ChatSessionEntity xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/>`, want: ErrNoEntity},
		{name: "xml no id", ct: ctXML, body: `<ChatSessionEntity><TopicId>1</TopicId></ChatSessionEntity>`, want: ErrNoEntity},
		{name: "xml nil id", ct: ctXML, body: `<ChatSessionEntity xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><ChatSessionId i:nil="true"/></ChatSessionEntity>`, want: ErrNoEntity},
		{name: "xml comments only", ct: ctXML, body: `<!-- nothing -->`, want: ErrNoEntity},
		{name: "xml bad int", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>x</ChatSessionId></ChatSessionEntity>`, wantText: "ChatSessionId"},
		{name: "xml nested in scalar", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId><b>1</b></ChatSessionId></ChatSessionEntity>`, wantText: "unexpected element"},
		{name: "xml bad bool", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>1</ChatSessionId><ChatbotIsActive>yes</ChatbotIsActive></ChatSessionEntity>`, wantText: "ChatbotIsActive"},
		{name: "xml bad date", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>1</ChatSessionId><WhenRequested>2019-07-04 02:30</WhenRequested></ChatSessionEntity>`, wantText: "WhenRequested"},
		{name: "xml too deep", ct: ctXML, body: `<ChatSessionEntity><ChatSessionId>1</ChatSessionId>` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</ChatSessionEntity>`, wantText: "nesting"},
		{name: "xml utf-16 declared", ct: ctXML, body: `<?xml version="1.0" encoding="utf-16"?><ChatSessionEntity/>`, wantText: "XML"},
	})
}

// TestDecodeEntityErrorsMediaAndCoding: media types that cannot be an
// entity, content codings that are refused or broken, and size bounds.
func TestDecodeEntityErrorsMediaAndCoding(t *testing.T) {
	jsonBody := readFixture(t, "reset.json")
	xmlBody := readFixture(t, "reset.xml")
	gz := gzipBytes(t, jsonBody)
	truncatedGzip := gz[:len(gz)/2]
	corruptGzip := bytes.Clone(gz)
	corruptGzip[len(corruptGzip)-5] ^= 0xff // CRC-32
	runErrorCases(t, []errorCase{
		{name: "gzip json null", ct: ctJSON, ce: "gzip", body: string(gzipBytes(t, []byte("null"))), want: ErrNoEntity},
		{name: "json body as xml", ct: ctXML, body: string(jsonBody), wantText: "XML"},
		{name: "text/html", ct: "text/html; charset=utf-8", body: string(jsonBody), want: ErrUnsupportedMediaType},
		{name: "no content type", ct: "", body: string(jsonBody), want: ErrUnsupportedMediaType},
		{name: "form", ct: "application/x-www-form-urlencoded", body: "ChatSessionId=1", want: ErrUnsupportedMediaType},
		{name: "jsonp", ct: "application/jsonp", body: string(jsonBody), want: ErrUnsupportedMediaType},
		{name: "bare suffix", ct: "application/+json", body: string(jsonBody), want: ErrUnsupportedMediaType},
		{name: "image json suffix", ct: "image/svg+xml", body: string(xmlBody), want: ErrUnsupportedMediaType},
		{name: "br", ct: ctJSON, ce: "br", body: string(jsonBody), want: ErrUnsupportedEncoding},
		{name: "compress", ct: ctJSON, ce: "compress", body: string(jsonBody), want: ErrUnsupportedEncoding},
		{name: "three codings", ct: ctJSON, ce: "gzip, identity, identity", body: string(gz), want: ErrUnsupportedEncoding},
		{name: "gzip not gzipped", ct: ctJSON, ce: "gzip", body: string(jsonBody), wantText: "gzip"},
		{name: "gzip truncated", ct: ctJSON, ce: "gzip", body: string(truncatedGzip), wantText: "gzip"},
		{name: "gzip bad checksum", ct: ctJSON, ce: "gzip", body: string(corruptGzip), wantText: "gzip"},
		{name: "deflate garbage", ct: ctJSON, ce: "deflate", body: "\xff\xff\xff\xff", wantText: "deflate"},
		{name: "zstd garbage", ct: ctJSON, ce: "zstd", body: string(jsonBody), wantText: "zstd"},
		{name: "identity too large", ct: ctJSON, body: string(jsonBody), maxDecoded: int64(len(jsonBody)) - 1, want: ErrTooLarge},
		{name: "gzip too large", ct: ctJSON, ce: "gzip", body: string(gz), maxDecoded: 100, want: ErrTooLarge},
	})
}
