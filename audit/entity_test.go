package audit

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

const (
	ctJSON = "application/json; charset=utf-8"
	ctXML  = "application/xml; charset=utf-8"
)

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "entities", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

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

func i32(v int32) *int32 { return &v }

func mustTime(tb testing.TB, s string) time.Time {
	tb.Helper()
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		tb.Fatal(err)
	}
	return t.UTC()
}

// wantReset is what both fixtures decode to.
func wantReset(tb testing.TB) *ChatSession {
	return &ChatSession{
		ID:                    427,
		TopicID:               103,
		Status:                "InQueue",
		ChatbotIsActive:       false,
		UserAssociateID:       i32(9),
		TransferToAssociateID: nil,
		InitialQueuePos:       204,
		AlertLevel:            557,
		Rank:                  253,
		Flags:                 "CustomerIsTyping",
		Rating:                877,
		WhenRequested:         mustTime(tb, "2019-07-04T00:30:52.413044Z"),
		WhenStarted:           mustTime(tb, "2002-10-20T00:30:52.413044Z"),
		WhenEnded:             mustTime(tb, "2021-08-09T00:30:52.413044Z"),
		WhenIdle:              mustTime(tb, "2005-08-05T00:30:52.413044Z"),
	}
}

// secrets are values from the fixtures that must never reach the struct.
var secrets = []string{
	"sk-4f9e2c1b-session-key", "explicabo", "visitor-host-203.0.113.77", "Nitzsche", "retta.reichel", "6360",
	"McCullough", "last-message-9c1d", "first-message-7f3a", "Sarah", "Erikson", "sare", "System.Int32",
}

func checkEqual(t *testing.T, got, want *ChatSession) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded entity mismatch\n got %s\nwant %s", dump(got), dump(want))
	}
}

func dump(cs *ChatSession) string {
	if cs == nil {
		return "<nil>"
	}
	deref := func(p *int32) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("%+v user=%s transferTo=%s", *cs, deref(cs.UserAssociateID), deref(cs.TransferToAssociateID))
}

// decode runs DecodeEntity and checks the invariants every call must keep.
func decode(t *testing.T, body []byte, ct, ce string, maxDecoded int64) (*ChatSession, error) {
	t.Helper()
	orig := bytes.Clone(body)
	cs, err := DecodeEntity(body, ct, ce, maxDecoded)
	if !bytes.Equal(body, orig) {
		t.Fatal("DecodeEntity modified body")
	}
	if (cs == nil) == (err == nil) {
		t.Fatalf("DecodeEntity returned entity %v and error %v", cs, err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "audit: decode entity: ") {
		t.Fatalf("error lacks context: %v", err)
	}
	return cs, err
}

func TestDecodeEntityFixtures(t *testing.T) {
	jsonBody := readFixture(t, "reset.json")
	xmlBody := readFixture(t, "reset.xml")
	tests := []struct {
		name, ct, ce string
		body         []byte
	}{
		{"json", ctJSON, "", jsonBody},
		{"json identity", "application/json", "identity", jsonBody},
		{"text/json", "text/json", "", jsonBody},
		{"json uppercase type", "Application/JSON ; charset=UTF-8", "", jsonBody},
		{"json suffix", "application/vnd.superoffice+json", "", jsonBody},
		{"json with BOM", ctJSON, "", append([]byte("\xEF\xBB\xBF"), jsonBody...)},
		{"json gzip", ctJSON, "gzip", gzipBytes(t, jsonBody)},
		{"json x-gzip", ctJSON, "X-Gzip", gzipBytes(t, jsonBody)},
		{"json deflate zlib", ctJSON, "deflate", zlibBytes(t, jsonBody)},
		{"json deflate raw", ctJSON, "deflate", rawDeflateBytes(t, jsonBody)},
		{"json zstd", ctJSON, "zstd", zstdBytes(t, jsonBody)},
		{"json gzip, identity", ctJSON, "gzip, identity", gzipBytes(t, jsonBody)},
		{"json identity,gzip", ctJSON, "identity,gzip", gzipBytes(t, jsonBody)},
		{"json empty list elements", ctJSON, " , gzip ,", gzipBytes(t, jsonBody)},
		{"json deflate, gzip", ctJSON, "deflate, gzip", gzipBytes(t, zlibBytes(t, jsonBody))},
		{"json gzip, zstd", ctJSON, "gzip, zstd", zstdBytes(t, gzipBytes(t, jsonBody))},
		{"json exact limit", ctJSON, "", jsonBody},
		{"xml", ctXML, "", xmlBody},
		{"text/xml", "text/xml", "", xmlBody},
		{"xml suffix", "application/atom+xml", "", xmlBody},
		{"xml gzip", "text/xml; charset=utf-8", "gzip", gzipBytes(t, xmlBody)},
		{"xml zstd", ctXML, "zstd", zstdBytes(t, xmlBody)},
		{"xml deflate raw", ctXML, "deflate", rawDeflateBytes(t, xmlBody)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			maxDecoded := int64(0)
			if tt.name == "json exact limit" {
				maxDecoded = int64(len(jsonBody))
			}
			cs, err := decode(t, tt.body, tt.ct, tt.ce, maxDecoded)
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, cs, wantReset(t))
			s := dump(cs)
			for _, secret := range secrets {
				if strings.Contains(s, secret) {
					t.Errorf("decoded entity contains %q: %s", secret, s)
				}
			}
		})
	}
}

// TestChatSessionHasNoSecretFields keeps secrets and personal data out of
// the struct itself, not just out of one decoding.
func TestChatSessionHasNoSecretFields(t *testing.T) {
	forbidden := []string{"session", "key", "message", "customer", "person", "contact",
		"project", "sale", "ticket", "name", "email", "phone", "host", "alias", "company"}
	typ := reflect.TypeFor[ChatSession]()
	for i := range typ.NumField() {
		name := strings.ToLower(typ.Field(i).Name)
		for _, f := range forbidden {
			if strings.Contains(name, f) {
				t.Errorf("ChatSession.%s looks like it carries %s data", typ.Field(i).Name, f)
			}
		}
	}
}

func TestDecodeEntityErrors(t *testing.T) {
	jsonBody := readFixture(t, "reset.json")
	xmlBody := readFixture(t, "reset.xml")
	gz := gzipBytes(t, jsonBody)
	truncatedGzip := gz[:len(gz)/2]
	corruptGzip := bytes.Clone(gz)
	corruptGzip[len(corruptGzip)-5] ^= 0xff // CRC-32
	tests := []struct {
		name, ct, ce string
		body         string
		maxDecoded   int64
		want         error  // sentinel, or nil for "some other error"
		wantText     string // substring of the message, optional
	}{
		{name: "empty body", ct: ctJSON, body: "", want: ErrNoEntity},
		{name: "empty body without content type", ct: "", body: "", want: ErrNoEntity},
		{name: "blank body", ct: ctJSON, body: " \r\n\t", want: ErrNoEntity},
		{name: "json null", ct: ctJSON, body: "null", want: ErrNoEntity},
		{name: "json null spaced", ct: ctJSON, body: " null\n", want: ErrNoEntity},
		{name: "gzip json null", ct: ctJSON, ce: "gzip", body: string(gzipBytes(t, []byte("null"))), want: ErrNoEntity},
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
		{name: "json body as xml", ct: ctXML, body: string(jsonBody), wantText: "XML"},
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
		{name: "default limit", ct: ctJSON, body: " " + strings.Repeat(" ", 1<<20) + "null", want: ErrTooLarge},
		{name: "gzip too large", ct: ctJSON, ce: "gzip", body: string(gz), maxDecoded: 100, want: ErrTooLarge},
	}
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

func TestDecodeEntityDates(t *testing.T) {
	const instant = "2019-07-04T00:30:52.413044Z"
	tests := []struct {
		name, in string
		want     string // RFC 3339 in UTC, "" for the zero time
	}{
		{"seven digits with offset", `"2019-07-04T02:30:52.4130440+02:00"`, instant},
		{"negative offset", `"2019-07-03T19:30:52.4130440-05:00"`, instant},
		{"Z", `"2019-07-04T02:30:52Z"`, "2019-07-04T02:30:52Z"},
		{"Z with fraction", `"2019-07-04T00:30:52.413044Z"`, instant},
		{"no zone with fraction", `"2019-07-04T02:30:52.413"`, "2019-07-04T02:30:52.413Z"},
		{"no zone seven digits", `"2019-07-04T00:30:52.4130440"`, instant},
		{"no zone", `"2019-07-04T02:30:52"`, "2019-07-04T02:30:52Z"},
		{"null", `null`, ""},
		{"empty", `""`, ""},
		{"min value", `"0001-01-01T00:00:00"`, ""},
		{"min value with offset", `"0001-01-01T00:00:00+01:00"`, ""},
		{"min value Z", `"0001-01-01T00:00:00Z"`, ""},
		{"escaped", `"2019-07-04T02:30:52\u002B02:00"`, "2019-07-04T00:30:52Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, field := range []string{"WhenRequested", "WhenStarted", "WhenEnded", "WhenIdle"} {
				body := fmt.Sprintf(`{"ChatSessionId": 1, %q: %s}`, field, tt.in)
				cs, err := decode(t, []byte(body), ctJSON, "", 0)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]time.Time{
					"WhenRequested": cs.WhenRequested, "WhenStarted": cs.WhenStarted,
					"WhenEnded": cs.WhenEnded, "WhenIdle": cs.WhenIdle,
				}[field]
				var want time.Time
				if tt.want != "" {
					want = mustTime(t, tt.want)
				}
				if !got.Equal(want) || got.Location() != time.UTC {
					t.Errorf("%s = %v (%v), want %v UTC", field, got, got.Location(), want)
				}
			}
			// The same text must give the same instant in XML.
			if tt.in != "null" && !strings.Contains(tt.in, `\u`) {
				body := fmt.Sprintf(`<ChatSessionEntity><ChatSessionId>1</ChatSessionId><WhenIdle> %s </WhenIdle></ChatSessionEntity>`, strings.Trim(tt.in, `"`))
				cs, err := decode(t, []byte(body), ctXML, "", 0)
				if err != nil {
					t.Fatal(err)
				}
				var want time.Time
				if tt.want != "" {
					want = mustTime(t, tt.want)
				}
				if !cs.WhenIdle.Equal(want) {
					t.Errorf("XML WhenIdle = %v, want %v", cs.WhenIdle, want)
				}
			}
		})
	}
}

func TestDecodeEntityStatus(t *testing.T) {
	names := []string{"Invalid", "PreChatForm", "Faq", "OfflineForm", "InQueue", "CustomerLast",
		"UserLast", "Finished", "Deleted", "Closed", "RequestPosted", "ClosedFromQueue"}
	for n, name := range names {
		for _, tc := range []struct{ ct, body string }{
			{ctJSON, fmt.Sprintf(`{"ChatSessionId": 1, "Status": %d}`, n)},
			{ctJSON, fmt.Sprintf(`{"ChatSessionId": 1, "Status": "%d"}`, n)},
			{ctJSON, fmt.Sprintf(`{"ChatSessionId": 1, "Status": %q}`, name)},
			{ctXML, fmt.Sprintf(`<ChatSessionEntity><ChatSessionId>1</ChatSessionId><Status>%d</Status></ChatSessionEntity>`, n)},
			{ctXML, fmt.Sprintf(`<ChatSessionEntity><ChatSessionId>1</ChatSessionId><Status>%s</Status></ChatSessionEntity>`, name)},
		} {
			cs, err := decode(t, []byte(tc.body), tc.ct, "", 0)
			if err != nil {
				t.Fatalf("%s: %v", tc.body, err)
			}
			if cs.Status != name {
				t.Errorf("%s: Status = %q, want %q", tc.body, cs.Status, name)
			}
		}
	}
	// Names are passed through, not validated: rules decide what they mean.
	cs, err := decode(t, []byte(`{"ChatSessionId": 1, "Status": "SomethingNew"}`), ctJSON, "", 0)
	if err != nil || cs.Status != "SomethingNew" {
		t.Fatalf("got %v, %v", cs, err)
	}
}

// TestDecodeEntityVariants covers the shapes the fixtures do not: nested
// associates, nil children, case-insensitive keys, namespaces and prefixes.
func TestDecodeEntityVariants(t *testing.T) {
	tests := []struct {
		name, ct, body string
		want           ChatSession
	}{
		{
			name: "json minimal",
			ct:   ctJSON,
			body: `{"ChatSessionId": 0}`,
			want: ChatSession{},
		},
		{
			name: "json lowercase keys, transfer, bot",
			ct:   ctJSON,
			body: `{"chatsessionid": 5, "topicid": 2, "status": "CustomerLast", "chatbotisactive": true,
				"user": null, "transferTo": {"Name": "x", "AssociateId": 11}, "flags": 3, "rating": null}`,
			want: ChatSession{ID: 5, TopicID: 2, Status: "CustomerLast", ChatbotIsActive: true, TransferToAssociateID: i32(11), Flags: "3"},
		},
		{
			name: "json associate without id",
			ct:   ctJSON,
			body: `{"ChatSessionId": 5, "User": {"Name": "x"}, "TransferTo": {"AssociateId": null}}`,
			want: ChatSession{ID: 5},
		},
		{
			name: "json associate id zero",
			ct:   ctJSON,
			body: `{"ChatSessionId": 5, "User": {"AssociateId": 0}}`,
			want: ChatSession{ID: 5, UserAssociateID: i32(0)},
		},
		{
			name: "json escaped strings",
			ct:   ctJSON,
			body: `{"ChatSessionId": 5, "Status": "In\u0051ueue", "Flags": "CustomerIsTyping, UserIsTyping"}`,
			want: ChatSession{ID: 5, Status: "InQueue", Flags: "CustomerIsTyping, UserIsTyping"},
		},
		{
			name: "xml prefixed namespace and nil user",
			ct:   ctXML,
			body: `<s:ChatSessionEntity xmlns:s="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
				<s:ChatSessionId> 7 </s:ChatSessionId><s:User xsi:nil="true"><s:AssociateId>3</s:AssociateId></s:User>
				<s:TransferTo><s:Name>x</s:Name><s:AssociateId>4</s:AssociateId></s:TransferTo>
				<s:ChatbotIsActive>1</s:ChatbotIsActive><s:Flags/><s:Status><![CDATA[Pre]]>Chat<!-- c -->Form</s:Status>
			</s:ChatSessionEntity>`,
			want: ChatSession{ID: 7, ChatbotIsActive: true, TransferToAssociateID: i32(4), Status: "PreChatForm"},
		},
		{
			name: "xml lowercase names, nested AssociateId ignored",
			ct:   ctXML,
			body: `<chatsessionentity><chatsessionid>8</chatsessionid><user><Person><AssociateId>1</AssociateId></Person></user>
				<transferto><associateid>2</associateid></transferto><rank>3</rank><Rating i:nil="true" xmlns:i="x"/></chatsessionentity>`,
			want: ChatSession{ID: 8, TransferToAssociateID: i32(2), Rank: 3},
		},
		{
			name: "xml nil associate id",
			ct:   ctXML,
			body: `<ChatSessionEntity><ChatSessionId>8</ChatSessionId><User><AssociateId nil="true"/></User></ChatSessionEntity>`,
			want: ChatSession{ID: 8},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := decode(t, []byte(tt.body), tt.ct, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			checkEqual(t, cs, &tt.want)
		})
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
		cs, err := DecodeEntity(body, ct, ce, 1<<16)
		if !bytes.Equal(body, orig) {
			t.Fatal("body modified")
		}
		if (cs == nil) == (err == nil) {
			t.Fatalf("entity %v, error %v", cs, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "audit: decode entity: ") {
				t.Fatalf("error lacks context: %v", err)
			}
			return
		}
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
		if _, err := DecodeEntity(body, ctJSON, "", 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEntityJSONGzip(b *testing.B) {
	body := gzipBytes(b, readFixture(b, "reset.json"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntity(body, ctJSON, "gzip", 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEntityXML(b *testing.B) {
	body := readFixture(b, "reset.xml")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEntity(body, ctXML, "", 0); err != nil {
			b.Fatal(err)
		}
	}
}
