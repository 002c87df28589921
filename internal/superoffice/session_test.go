package superoffice

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// sessionBackend answers each session id its own way; it records the
// credential and path of the lookup for 427.
type sessionBackend struct {
	mu                       sync.Mutex
	gotAuth, gotCookie, path string
}

func (b *sessionBackend) answer(w http.ResponseWriter, r *http.Request, entity []byte) {
	id := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	switch id {
	case "427":
		b.mu.Lock()
		b.gotAuth, b.gotCookie, b.path = r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.URL.Path
		b.mu.Unlock()
		// Keys in another case must be redacted too.
		_, _ = w.Write([]byte(strings.Replace(string(entity), `"SessionKey"`, `"sessionkey"`, 1)))
	case "5":
		_, _ = w.Write(entity) // id 427, not 5
	case "6":
		_, _ = w.Write([]byte("null"))
	case "7":
		w.WriteHeader(http.StatusForbidden)
	case "8":
		time.Sleep(300 * time.Millisecond)
	case "10":
		w.WriteHeader(http.StatusNotFound)
	case "11":
		w.WriteHeader(http.StatusUnauthorized)
	case "12":
		w.WriteHeader(http.StatusInternalServerError)
	case "13":
		_, _ = w.Write([]byte(`{"ChatSessionId": 13,`))
	}
}

func newSessionLookup(t *testing.T) (*Client, *sessionBackend) {
	t.Helper()
	entity := readFixture(t, "reset.json")
	b := &sessionBackend{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { b.answer(w, r, entity) }))
	t.Cleanup(srv.Close)
	return newTestClient(t, srv.URL, func(cfg *Config) {
		cfg.Timeout = 100 * time.Millisecond
		cfg.HTTPClient = srv.Client()
	}), b
}

var sessionCaller = http.Header{"Authorization": {"SoTicket 7T:x"}, "Cookie": {"a=b"}, "X-Other": {"no"}}

func TestChatSession(t *testing.T) {
	c, b := newSessionLookup(t)
	e, err := c.ChatSession(context.Background(), "/superoffice", 427, sessionCaller)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gotAuth != "SoTicket 7T:x" || b.gotCookie != "a=b" || b.path != "/superoffice/api/v1/ChatSession/427" {
		t.Errorf("lookup sent auth %q cookie %q to %q", b.gotAuth, b.gotCookie, b.path)
	}
	for k := range e {
		for _, r := range Redacted {
			if strings.EqualFold(k, r) {
				t.Errorf("redacted field %s reached the policy", k)
			}
		}
	}
	if e["Status"] != "InQueue" || e["TopicId"] == nil {
		t.Errorf("entity lost fields: %v", e)
	}
}

func TestChatSessionFailures(t *testing.T) {
	c, _ := newSessionLookup(t)
	for _, tc := range []struct {
		id         int32
		wantStatus int
		wantReason string
	}{
		{5, 503, refusal.SessionLookupFailed},
		{6, 503, refusal.SessionLookupFailed},
		{7, 403, refusal.SessionLookupRefused},
		{8, 503, refusal.SessionLookupFailed},
		{9, 503, refusal.SessionLookupFailed}, // empty 200 body
		{10, 404, refusal.SessionNotFound},
		{11, 401, refusal.SessionLookupRefused},
		{12, 503, refusal.SessionLookupFailed},
		{13, 503, refusal.SessionLookupFailed}, // malformed JSON
	} {
		_, err := c.ChatSession(context.Background(), "", tc.id, sessionCaller)
		rf, ok := refusal.As(err)
		if !ok || rf.Status != tc.wantStatus || rf.Reason() != tc.wantReason || rf.Message != refusal.MessageSessionLookup {
			t.Errorf("id %d: err %v, want %d %s", tc.id, err, tc.wantStatus, tc.wantReason)
		}
		if ok && rf.Err == nil {
			t.Errorf("id %d: refusal without its cause", tc.id)
		}
		if err != nil && strings.Contains(err.Error(), "7T:x") {
			t.Errorf("error leaks the credential: %v", err)
		}
	}
}

// TestDecodePolicyEntity: the policy's view keeps numbers exact and drops
// every Redacted field, in any spelling, and nothing else.
func TestDecodePolicyEntity(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string]any // nil: an error
	}{
		{"exact numbers", `{"ChatSessionId": 9007199254740993, "Rating": 1.50}`,
			map[string]any{"ChatSessionId": json.Number("9007199254740993"), "Rating": json.Number("1.50")}},
		{"redacted in any case", `{"ChatSessionId": 1, "sessionKEY": "s", "customername": "c", "Person": {}, "Status": "InQueue"}`,
			map[string]any{"ChatSessionId": json.Number("1"), "Status": "InQueue"}},
		{"nested kept", `{"ChatSessionId": 1, "User": {"AssociateId": 9}}`,
			map[string]any{"ChatSessionId": json.Number("1"), "User": map[string]any{"AssociateId": json.Number("9")}}},
		{"null", `null`, nil},
		{"array", `[1]`, nil},
		{"empty", ``, nil},
		{"truncated", `{"ChatSessionId": 1`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodePolicyEntity([]byte(tt.body))
			if tt.want == nil {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(got)
			wantJSON, _ := json.Marshal(tt.want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("got %s, want %s", gotJSON, wantJSON)
			}
			for k, v := range got {
				if _, isFloat := v.(float64); isFloat {
					t.Errorf("%s decoded as float64, not exact", k)
				}
			}
		})
	}
}
