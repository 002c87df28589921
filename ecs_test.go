package resetguard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/ecstest"
)

// TestHandlerRecordsConformToECS runs real requests through the
// provisioned handler with a durable audit file (an allowed reset, a
// policy refusal and two earlier refusals, two of them with the same
// client X-Request-Id) after a stop that left an intent open and a torn
// last line, so that the file also holds the sink's repair and
// gateway_restarted records. Every durable line and every logger record
// must meet ECS 8.11.0's field definitions (internal/ecstest); event.id
// is the record's own, the request's id is http.request.id and the
// X-Request-Id header; the logger's records carry no chain.
func TestHandlerRecordsConformToECS(t *testing.T) {
	ecs, err := ecstest.Load(ecstest.Excerpt)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	seedStoppedGateway(t, path)
	h, logs := provisioned(t, &Handler{Policy: testPolicy(), Audit: &AuditConfig{File: &AuditFile{Path: path, Fsync: "never"}}})
	t.Cleanup(func() { _ = h.Cleanup() })

	for _, c := range []struct {
		path   string
		header http.Header
		status int
	}{
		{"/api/v1/ChatSession/427/Reset", basicHeader("bot", http.Header{"X-Request-Id": {"client-1"}}), 200},
		{"/api/v1/ChatSession/427/Reset", basicHeader("mallory", http.Header{"X-Request-Id": {"client-1"}}), 403},
		{"/api/v1/ChatSession/0/Reset", basicHeader("bot", nil), 400},
		{"/api/v1/ChatSession/427/Reset", http.Header{}, 401},
	} {
		r := httptest.NewRequest(http.MethodPost, c.path, nil)
		r.Header = c.header
		w, _, _ := serveStep(t, h, r)
		if w.Code != c.status {
			t.Fatalf("%s %v: status %d, want %d: %s", c.path, c.header, w.Code, c.status, w.Body)
		}
		if id := c.header.Get("X-Request-Id"); id != "" && w.Header().Get("X-Request-Id") != id {
			t.Errorf("X-Request-Id %q, want the client's %q", w.Header().Get("X-Request-Id"), id)
		}
	}

	// The durable file: the stopped intent, the repair and
	// gateway_restarted the open appended, then the four requests'
	// records (the allowed one has two).
	lines := durableLines(t, path)
	if len(lines) != 8 {
		t.Fatalf("%d durable records, want 8", len(lines))
	}
	ids := map[string]string{}
	kinds := map[string]int{}
	for i, m := range lines {
		if errs := ecs.Check(m); len(errs) > 0 {
			raw, _ := json.Marshal(m)
			t.Errorf("durable record %d breaks ECS %s:%s\n%s", i+1, ecstest.Version, ecstest.Join(errs), raw)
		}
		id, _ := m["event"].(map[string]any)["id"].(string)
		if len(id) != 36 || ids[id] != "" {
			t.Errorf("durable record %d: event.id %q missing, not a UUID or not unique", i+1, id)
		}
		kind, _ := rg(m)["kind"].(string)
		ids[id] = kind
		kinds[kind]++
		if chainSeq(m) == nil {
			t.Errorf("durable record %d has no chain", i+1)
		}
	}
	if kinds["intent"] != 2 || kinds["outcome"] != 2 || kinds["refusal"] != 3 || kinds["repair"] != 1 {
		t.Errorf("durable kinds %v", kinds)
	}
	// One request, two records: the allowed reset's intent and outcome
	// share the client's request id, not an event.id.
	intent, outcome := lines[3], lines[4]
	if reqID(intent) != "client-1" || reqID(outcome) != "client-1" || eventID(intent) == eventID(outcome) {
		t.Errorf("intent %s/%s, outcome %s/%s: want request id client-1 on both, two event ids",
			reqID(intent), eventID(intent), reqID(outcome), eventID(outcome))
	}

	// The Caddy logger: the four requests' records (the outcome or the
	// refusal), ECS-conformant, without the chain, each the file's record
	// of the same event.id.
	if logs.Len() != 4 {
		t.Fatalf("%d logger records, want 4", logs.Len())
	}
	for i, e := range logs.All() {
		raw, err := json.Marshal(e.ContextMap())
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if errs := ecs.Check(m); len(errs) > 0 {
			t.Errorf("logger record %d breaks ECS %s:%s\n%s", i+1, ecstest.Version, ecstest.Join(errs), raw)
		}
		if strings.Contains(string(raw), `"chain"`) {
			t.Errorf("logger record %d carries the chain: %s", i+1, raw)
		}
		if kind := ids[eventID(m)]; kind == "" || kind == "intent" {
			t.Errorf("logger record %d: event.id %s is not an outcome or refusal of the file (%q)", i+1, eventID(m), kind)
		}
	}
	if a, b := logs.All()[0].ContextMap(), logs.All()[1].ContextMap(); eventID(a) == eventID(b) {
		t.Errorf("two requests with one X-Request-Id share event.id %s", eventID(a))
	}
}

func eventID(m map[string]any) string {
	ev, _ := m["event"].(map[string]any)
	s, _ := ev["id"].(string)
	return s
}

func reqID(m map[string]any) string {
	h, _ := m["http"].(map[string]any)
	r, _ := h["request"].(map[string]any)
	s, _ := r["id"].(string)
	return s
}

// seedStoppedGateway leaves at path what a gateway killed mid-reset
// leaves: an allowed reset's intent, and half of its next line.
func seedStoppedGateway(t *testing.T, path string) {
	t.Helper()
	s, err := audit.OpenFileSink(audit.FileSinkConfig{Path: path, Fsync: audit.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	req := &audit.Record{
		Timestamp: time.Now().Add(-time.Minute), EventID: audit.NewEventID(), RequestID: "before-the-stop",
		Action: action, Method: http.MethodPost, Path: "/api/v1/ChatSession/427/Reset", SourceIP: "192.0.2.1",
		UserName: "bot", PrincipalSource: "none", Route: "rest", SessionID: 427,
		CredScheme: "basic", Fingerprint: "0123456789abcdef0123456789abcdef",
		Decision: &audit.Decision{Allow: true, Reasons: []string{"ok"}, Query: "data.resetguard.test.decision", Revision: "sha256:0011223344556677"},
	}
	if err := s.Write(audit.NewIntent(req)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(`{"@timestamp":"`); err != nil {
		t.Fatal(err)
	}
}
