package classify

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/classify/soaptest"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

const (
	ctJSON = "application/json"
	ctXML  = "application/xml"
	ctForm = "application/x-www-form-urlencoded"
)

// bodyCase is one Agents request body and what sessionIDFromBody must
// make of it.
type bodyCase struct {
	name        string
	contentType string
	body        string
	want        int32 // 0: an error
	unsupported bool  // the error must be errUnsupportedBody
}

var bodyCases = []bodyCase{
	// JSON.
	{"json", ctJSON, `{"ChatSessionId":831}`, 831, false},
	{"json lower-case key", ctJSON, `{"chatsessionid":831}`, 831, false},
	{"json upper-case key", ctJSON, `{"CHATSESSIONID":831}`, 831, false},
	{"json escaped key", ctJSON, `{"ChatSession\u0049d":831}`, 831, false},
	{"json string value", ctJSON, `{"ChatSessionId":"831"}`, 831, false},
	{"json leading zero in string", ctJSON, `{"ChatSessionId":"0831"}`, 831, false},
	{"json whitespace", ctJSON, " \n{ \"ChatSessionId\" : 831 }\n ", 831, false},
	{"json extra fields", ctJSON, `{"a":1,"ChatSessionId":831,"b":{"c":[1,2,{"x":5}]},"d":null}`, 831, false},
	// An id named again, nested or prefixed, is ambiguous: refused.
	{"json nested id", ctJSON, `{"a":1,"ChatSessionId":831,"b":{"c":[1,2,{"ChatSessionId":5}]},"d":null}`, 0, false},
	{"json prefixed key", ctJSON, `{"ChatSessionId":831,"request.chatSessionId":5}`, 0, false},
	{"form prefixed key", ctForm, `ChatSessionId=831&request.ChatSessionId=5`, 0, false},
	{"form bracketed key", ctForm, `ChatSessionId=831&request%5BChatSessionId%5D=5`, 0, false},
	{"json max", ctJSON, `{"ChatSessionId":2147483647}`, 2147483647, false},
	{"json charset", "application/json; charset=utf-8", `{"ChatSessionId":831}`, 831, false},
	{"json upper-case media type", "Application/JSON", `{"ChatSessionId":831}`, 831, false},
	{"text/json", "text/json", `{"ChatSessionId":831}`, 831, false},
	{"+json suffix", "application/vnd.superoffice+json", `{"ChatSessionId":831}`, 831, false},
	{"json duplicate key", ctJSON, `{"ChatSessionId":831,"ChatSessionId":832}`, 0, false},
	{"json duplicate key same value", ctJSON, `{"ChatSessionId":831,"ChatSessionId":831}`, 0, false},
	{"json duplicate key differing case", ctJSON, `{"ChatSessionId":831,"chatsessionid":832}`, 0, false},
	{"json missing", ctJSON, `{"SessionId":831}`, 0, false},
	{"json empty object", ctJSON, `{}`, 0, false},
	{"json null", ctJSON, `null`, 0, false},
	{"json null value", ctJSON, `{"ChatSessionId":null}`, 0, false},
	{"json bool value", ctJSON, `{"ChatSessionId":true}`, 0, false},
	{"json array body", ctJSON, `[{"ChatSessionId":831}]`, 0, false},
	{"json bare number", ctJSON, `831`, 0, false},
	{"json bare string", ctJSON, `"831"`, 0, false},
	{"json trailing data", ctJSON, `{"ChatSessionId":831} x`, 0, false},
	{"json trailing object", ctJSON, `{"ChatSessionId":831}{"ChatSessionId":832}`, 0, false},
	{"json nested object value", ctJSON, `{"ChatSessionId":{"ChatSessionId":831}}`, 0, false},
	{"json array value", ctJSON, `{"ChatSessionId":[831]}`, 0, false},
	{"json float", ctJSON, `{"ChatSessionId":831.5}`, 0, false},
	{"json float integral", ctJSON, `{"ChatSessionId":831.0}`, 0, false},
	{"json exponent", ctJSON, `{"ChatSessionId":8.31e2}`, 0, false},
	{"json negative", ctJSON, `{"ChatSessionId":-831}`, 0, false},
	{"json zero", ctJSON, `{"ChatSessionId":0}`, 0, false},
	{"json too big", ctJSON, `{"ChatSessionId":2147483648}`, 0, false},
	{"json string with sign", ctJSON, `{"ChatSessionId":"+831"}`, 0, false},
	{"json string not a number", ctJSON, `{"ChatSessionId":"abc"}`, 0, false},
	{"json truncated", ctJSON, `{"ChatSessionId":831`, 0, false},
	{"json missing comma", ctJSON, `{"a":1 "ChatSessionId":831}`, 0, false},
	{"json trailing comma", ctJSON, `{"ChatSessionId":831,}`, 0, false},
	{"json empty body", ctJSON, ``, 0, false},
	{"json body is xml", ctJSON, `<ChatSessionId>831</ChatSessionId>`, 0, false},

	// XML.
	{"xml", ctXML, `<ResetChatSession xmlns="` + soaptest.NS + `"><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"text/xml", "text/xml", `<ResetChatSession xmlns="` + soaptest.NS + `"><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml charset", "application/xml; charset=utf-8", `<ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml declaration", ctXML, `<?xml version="1.0" encoding="utf-8"?><ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml lower-case element", ctXML, `<ResetChatSession><chatsessionid>831</chatsessionid></ResetChatSession>`, 831, false},
	{"xml prefixed element", ctXML, `<s:ResetChatSession xmlns:s="` + soaptest.NS + `"><s:ChatSessionId>831</s:ChatSessionId></s:ResetChatSession>`, 831, false},
	{"xml whitespace around id", ctXML, "<ResetChatSession><ChatSessionId>\n  831\n</ChatSessionId></ResetChatSession>", 831, false},
	{"xml char reference", ctXML, `<ResetChatSession><ChatSessionId>&#56;31</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml cdata", ctXML, `<ResetChatSession><ChatSessionId><![CDATA[831]]></ChatSessionId></ResetChatSession>`, 831, false},
	{"xml doctype", ctXML, `<!DOCTYPE r [<!ENTITY x "831">]><ResetChatSession><ChatSessionId>&x;</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml doctype without entity", ctXML, `<!DOCTYPE ResetChatSession><ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml duplicate id", ctXML, `<ResetChatSession><ChatSessionId>831</ChatSessionId><ChatSessionId>832</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml duplicate id differing case", ctXML, `<ResetChatSession><ChatSessionId>831</ChatSessionId><chatsessionid>831</chatsessionid></ResetChatSession>`, 0, false},
	{"xml missing id", ctXML, `<ResetChatSession><SessionId>831</SessionId></ResetChatSession>`, 0, false},
	{"xml empty id", ctXML, `<ResetChatSession><ChatSessionId/></ResetChatSession>`, 0, false},
	{"xml markup in id", ctXML, `<ResetChatSession><ChatSessionId><b>831</b></ChatSessionId></ResetChatSession>`, 0, false},
	{"xml negative", ctXML, `<ResetChatSession><ChatSessionId>-831</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml malformed", ctXML, `<ResetChatSession><ChatSessionId>831</ResetChatSession>`, 0, false},
	{"xml unclosed", ctXML, `<ResetChatSession><ChatSessionId>831`, 0, false},
	{"xml empty body", ctXML, ``, 0, false},

	// Form.
	{"form", ctForm, `ChatSessionId=831`, 831, false},
	{"form lower-case key, extra field", ctForm, `chatsessionid=831&x=1`, 831, false},
	{"form charset", ctForm + "; charset=utf-8", `x=1&ChatSessionId=831`, 831, false},
	{"form encoded key", ctForm, `Chat%53essionId=831`, 831, false},
	{"form encoded value", ctForm, `ChatSessionId=%38%33%31`, 831, false},
	{"form duplicate", ctForm, `ChatSessionId=831&ChatSessionId=832`, 0, false},
	{"form duplicate differing case", ctForm, `ChatSessionId=831&chatsessionid=831`, 0, false},
	{"form missing", ctForm, `x=1`, 0, false},
	{"form empty value", ctForm, `ChatSessionId=`, 0, false},
	{"form key only", ctForm, `ChatSessionId`, 0, false},
	{"form bad escape", ctForm, `ChatSessionId=%zz`, 0, false},
	{"form semicolon", ctForm, `ChatSessionId=831;x=1`, 0, false},
	{"form empty body", ctForm, ``, 0, false},
	{"form body is json", ctForm, `{"ChatSessionId":831}`, 0, false},

	// No content type: sniffed from the first non-space byte.
	{"sniffed json", "", `{"ChatSessionId":831}`, 831, false},
	{"sniffed json after space", "", " \r\n\t{\"ChatSessionId\":831}", 831, false},
	{"sniffed xml", "", `<ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"sniffed form", "", `ChatSessionId=831`, 831, false},
	{"sniffed empty", "", ``, 0, false},
	{"sniffed blank", "", " \n ", 0, false},
	{"sniffed json array", "", `[831]`, 0, false},

	// Unsupported and malformed content types.
	{"multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"ChatSessionId\"\r\n\r\n831\r\n--x--\r\n", 0, true},
	{"text/plain", "text/plain", `ChatSessionId=831`, 0, true},
	{"octet-stream", "application/octet-stream", `{"ChatSessionId":831}`, 0, true},
	{"malformed content type", "application/json; charset", `{"ChatSessionId":831}`, 0, true},
	{"malformed content type slash", "/json", `{"ChatSessionId":831}`, 0, true},
	{"content type without subtype", "json", `{"ChatSessionId":831}`, 0, true},
}

func TestSessionIDFromBody(t *testing.T) {
	for _, tc := range bodyCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sessionIDFromBody(tc.contentType, []byte(tc.body))
			if tc.want != 0 {
				if err != nil || got != tc.want {
					t.Fatalf("sessionIDFromBody(%q, %q) = %d, %v; want %d, nil", tc.contentType, tc.body, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("sessionIDFromBody(%q, %q) = %d, nil; want an error", tc.contentType, tc.body, got)
			}
			if got != 0 {
				t.Errorf("sessionIDFromBody(%q, %q) = %d with error %v; want 0 with an error", tc.contentType, tc.body, got, err)
			}
			if unsup := errors.Is(err, errUnsupportedBody); unsup != tc.unsupported {
				t.Errorf("sessionIDFromBody(%q, %q) error %v: errors.Is(errUnsupportedBody) = %v, want %v", tc.contentType, tc.body, err, unsup, tc.unsupported)
			}
		})
	}
}

// TestSessionIDFromBodyDoesNotModifyBody checks that reading the id leaves
// the bytes that will be restored for the backend alone.
func TestSessionIDFromBodyDoesNotModifyBody(t *testing.T) {
	for _, tc := range bodyCases {
		body := []byte(tc.body)
		_, _ = sessionIDFromBody(tc.contentType, body)
		if string(body) != tc.body {
			t.Errorf("%s: body changed to %q", tc.name, body)
		}
	}
}

// FuzzSessionIDFromBody: never a panic; an id in range or an error, never
// both; the body the backend will receive is left as it was.
func FuzzSessionIDFromBody(f *testing.F) {
	for _, tc := range bodyCases {
		f.Add(tc.contentType, []byte(tc.body))
	}
	for _, tc := range sessionIDCases {
		f.Add(ctJSON, []byte(fmt.Sprintf(`{"ChatSessionId":%q}`, tc.in)))
		f.Add(ctForm, []byte("ChatSessionId="+tc.in))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		orig := string(body)
		id, err := sessionIDFromBody(contentType, body)
		if err == nil && (id < 1 || id > 2147483647) {
			t.Fatalf("sessionIDFromBody(%q, %q) = %d, nil: out of range", contentType, body, id)
		}
		if err != nil && id != 0 {
			t.Fatalf("sessionIDFromBody(%q, %q) = %d with error %v", contentType, body, id, err)
		}
		if string(body) != orig {
			t.Fatalf("sessionIDFromBody modified the body")
		}
	})
}

// TestAgentsSessionID: each way an Agents request fails is the refusal
// the client gets, with its status, reason and fixed message; a good one
// gives the id and leaves the body for the backend.
func TestAgentsSessionID(t *testing.T) {
	const anyID = "the request body holds no single valid ChatSessionId"
	cases := []struct {
		name        string
		target      string
		contentType string
		body        string
		wantID      int32
		wantStatus  int // 0: no refusal
		wantReason  string
		wantMessage string
	}{
		{"json", "/", ctJSON, `{"ChatSessionId":831}`, 831, 0, "", ""},
		{"form, other query parameters", "/?x=1", ctForm, `ChatSessionId=831`, 831, 0, "", ""},
		{"prefixed form name beside the id", "/", ctForm, `ChatSessionId=831&request.ChatSessionId=1`, 0, 400, refusal.SessionIDAmbiguous, msgBodyAmbiguous},
		{"bracketed form name alone", "/", ctForm, `request[ChatSessionId]=1`, 0, 400, refusal.SessionIDAmbiguous, msgBodyAmbiguous},
		{"nested json id", "/", ctJSON, `{"ChatSessionId":8,"r":{"chatSessionId":1}}`, 0, 400, refusal.SessionIDAmbiguous, msgBodyAmbiguous},
		{"prefixed json key", "/", ctJSON, `{"request.ChatSessionId":1}`, 0, 400, refusal.SessionIDAmbiguous, msgBodyAmbiguous},
		{"unsupported media type", "/", "text/plain", `ChatSessionId=831`, 0, 415, refusal.UnsupportedMediaType,
			"the request body must be JSON, XML or form-encoded"},
		{"malformed media type", "/", "json", `{"ChatSessionId":831}`, 0, 415, refusal.UnsupportedMediaType,
			"the request body must be JSON, XML or form-encoded"},
		{"xml with a DTD", "/", ctXML, `<!DOCTYPE r><r><ChatSessionId>831</ChatSessionId></r>`, 0, 400, refusal.XMLDTDRefused,
			"XML document type declarations are not accepted"},
		{"id out of range", "/", ctJSON, `{"ChatSessionId":0}`, 0, 400, refusal.BadSessionID, msgBadSessionID},
		{"id missing", "/", ctJSON, `{}`, 0, 400, refusal.BadSessionID, anyID},
		{"id twice", "/", ctForm, `ChatSessionId=1&ChatSessionId=2`, 0, 400, refusal.BadSessionID, anyID},
		{"empty body", "/", "", ``, 0, 400, refusal.BadSessionID, anyID},
		{"body past the bound", "/", ctJSON, `{"ChatSessionId":1,"pad":"` + strings.Repeat("x", 100) + `"}`, 0, 413,
			refusal.RequestBodyTooLarge, refusal.MessageBodyTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tc.target, strings.NewReader(tc.body))
			if tc.contentType != "" {
				r.Header.Set("Content-Type", tc.contentType)
			}
			id, ref := AgentsSessionID(httptest.NewRecorder(), r, 64, time.Second)
			if tc.wantStatus == 0 {
				if ref != nil || id != tc.wantID {
					t.Fatalf("AgentsSessionID = %d, %v; want %d, nil", id, ref, tc.wantID)
				}
				if got, _ := io.ReadAll(r.Body); string(got) != tc.body {
					t.Errorf("body left for the backend %q, want %q", got, tc.body)
				}
				return
			}
			if ref == nil {
				t.Fatalf("AgentsSessionID = %d, nil; want a %d refusal", id, tc.wantStatus)
			}
			if id != 0 || ref.Status != tc.wantStatus || ref.Reason() != tc.wantReason || ref.Message != tc.wantMessage {
				t.Errorf("AgentsSessionID = %d, %d %q %q; want 0, %d %q %q", id, ref.Status, ref.Reason(), ref.Message, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
		})
	}
}
