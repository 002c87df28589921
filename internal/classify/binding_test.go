package classify

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// TestCheckQuery: every query parameter a Web API model binder could
// take for the session id is refused; others pass.
func TestCheckQuery(t *testing.T) {
	for _, tc := range []struct {
		query   string
		refused bool
	}{
		{"", false},
		{"x=1", false},
		{"$select=Status,ChatSessionId&x=1", false},
		{"ChatSessionIdx=1", false},
		{"identity=1&idx=2&ids=3", false},
		{"Chat%zzSessionId=1", false},
		{"ChatSessionId=1", true},
		{"chatsessionid", true},
		{"x=1;CHATSESSIONID=2", true},
		{"request.ChatSessionId=666", true},
		{"request.Chat%53essionId=666", true},
		{"request.Chat%2553essionId=666", true}, // double-encoded
		{"%20ChatSessionId%20=1", true},
		{"+ChatSessionId=1", true},
		{"request[ChatSessionId]=1", true},
		{"[chatSessionId]=1", true},
		{"chatSessionId[]=1", true},
		{"ChatSe%C5%BFsionId=1", true}, // 'ſ' folds to 's'
		{"id=2", true},
		{"ID=2", true},
		{"request.id=2", true},
		{"x[Id]=2", true},
	} {
		ref := CheckQuery(tc.query)
		if got := ref != nil; got != tc.refused {
			t.Errorf("CheckQuery(%q) refused = %v, want %v", tc.query, got, tc.refused)
			continue
		}
		if ref != nil && (ref.Status != http.StatusBadRequest || ref.Reason() != refusal.SessionIDAmbiguous || ref.Message != msgQueryBindsID) {
			t.Errorf("CheckQuery(%q) = %d %q %q", tc.query, ref.Status, ref.Reason(), ref.Message)
		}
	}
}

// TestRESTBody: a REST reset takes no body; an empty one is accepted
// (and not forwarded), anything else refused.
func TestRESTBody(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		chunked    bool
		reason     string
	}{
		{"none", "", false, ""},
		{"whitespace", " \r\n", false, ""},
		{"empty object", "{}", false, ""},
		{"null", " null ", false, ""},
		{"chunked empty", "", true, ""},
		{"form id", "chatSessionId=2", false, refusal.RequestBodyRefused},
		{"json id", `{"ChatSessionId":2}`, false, refusal.RequestBodyRefused},
		{"chunked id", "id=2", true, refusal.RequestBodyRefused},
		{"anything", "x", false, refusal.RequestBodyRefused},
		{"too large", strings.Repeat(" ", 65), false, refusal.RequestBodyTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/1/Reset", strings.NewReader(tc.body))
			if tc.chunked {
				r.ContentLength = -1
				r.TransferEncoding = []string{"chunked"}
			}
			ref := RESTBody(httptest.NewRecorder(), r, 64, time.Second)
			switch {
			case tc.reason == "" && ref != nil:
				t.Fatalf("RESTBody refused %q: %v", tc.body, ref)
			case tc.reason != "" && (ref == nil || ref.Reason() != tc.reason):
				t.Fatalf("RESTBody(%q) = %v, want %s", tc.body, ref, tc.reason)
			}
		})
	}
}
