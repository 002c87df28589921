package superoffice

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	ctJSON = "application/json; charset=utf-8"
	ctXML  = "application/xml; charset=utf-8"
)

func readFixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "entities", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
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
	e, err := DecodeEntity(body, ct, ce, DecodeOptions{MaxDecoded: maxDecoded})
	if !bytes.Equal(body, orig) {
		t.Fatal("DecodeEntity modified body")
	}
	if (e == nil) == (err == nil) {
		t.Fatalf("DecodeEntity returned entity %v and error %v", e, err)
	}
	var cs *ChatSession
	if e != nil {
		if e.Session == nil || e.Customer != nil || e.CustomerErr != nil {
			t.Fatalf("DecodeEntity without customer fields returned %+v", e)
		}
		cs = e.Session
	}
	if err != nil && !strings.HasPrefix(err.Error(), errPrefix) {
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
