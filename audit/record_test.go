package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// encode writes r through a Sink with Caddy's JSON encoder settings and
// returns the line.
func encode(t *testing.T, r *Record) string {
	t.Helper()
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	NewSink(zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.InfoLevel))).Write(r)
	return buf.String()
}

// fixtureEntity is the reset fixture's entity, as the handler records it:
// the one place the audit tests decode it.
func fixtureEntity(tb testing.TB) *ChatSession {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "entities", "reset.json"))
	if err != nil {
		tb.Fatal(err)
	}
	cs, err := DecodeEntity(b, "application/json", "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// recordJSONCase is a record and what its line must hold (dotted path →
// value) and must not.
type recordJSONCase struct {
	name   string
	rec    *Record
	want   map[string]any
	absent []string
}

func recordJSONCases(cs *ChatSession) []recordJSONCase {
	ts := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	return []recordJSONCase{
		{
			name: "allowed with entity",
			rec: &Record{
				Timestamp: ts, EventID: "req-1", RequestID: "req-1", Action: "chat_session.reset", Allowed: true,
				Outcome: OutcomeSuccess, Duration: 1500, Method: "POST", Status: 200, Path: "/api/v1/ChatSession/427/Reset",
				SourceIP: "127.0.0.1", UserName: "bot", UserDomain: "Cust12345", Route: "rest", SessionID: 427,
				CredScheme: "basic", Fingerprint: "abc",
				Decision:    &Decision{Allow: true, Reasons: []string{"ok"}, Query: "data.q", Revision: "sha256:1", Eval: 42},
				Upstream:    &Upstream{Status: 200, Duration: 99, ContentType: "application/json", EntityRead: true},
				ChatSession: cs,
			},
			want: map[string]any{
				"@timestamp": "2026-11-25T10:00:00Z", "schema": Schema, "ecs.version": ECSVersion,
				"event.id": "req-1", "event.kind": "event", "event.category": []any{"api"}, "event.type": []any{"allowed"},
				"event.action": "chat_session.reset", "event.outcome": "success", "event.duration": float64(1500),
				"http.request.id": "req-1", "http.request.method": "POST", "http.response.status_code": float64(200),
				"url.path": "/api/v1/ChatSession/427/Reset", "source.ip": "127.0.0.1",
				"user.name": "bot", "user.domain": "Cust12345",
				"resetguard.route": "rest", "resetguard.session_id": float64(427),
				"resetguard.credential.scheme": "basic", "resetguard.credential.fingerprint": "abc",
				"resetguard.decision.allow": true, "resetguard.decision.dry_run": false, "resetguard.decision.reasons": []any{"ok"},
				"resetguard.decision.query": "data.q", "resetguard.decision.policy_revision": "sha256:1", "resetguard.decision.eval_ns": float64(42),
				"resetguard.upstream.status": float64(200), "resetguard.upstream.duration_ns": float64(99), "resetguard.upstream.entity_read": true,
				"resetguard.chat_session.id": float64(427), "resetguard.chat_session.topic_id": float64(103),
				"resetguard.chat_session.status": "InQueue", "resetguard.chat_session.chatbot_is_active": false,
				"resetguard.chat_session.user_associate_id": float64(9), "resetguard.chat_session.transfer_to_associate_id": nil,
				"resetguard.chat_session.flags":          "CustomerIsTyping",
				"resetguard.chat_session.when_requested": "2019-07-04T00:30:52.413044Z",
			},
			absent: []string{"event.reason", "user.id", "resetguard.upstream.error"},
		},
		{
			name: "denied before the policy",
			rec: &Record{Timestamp: ts, Action: "chat_session.reset", Outcome: OutcomeFailure, Reason: "missing_credentials",
				Method: "POST", Status: 401, Path: "/x", Route: "rest"},
			want: map[string]any{"event.type": []any{"denied"}, "event.reason": "missing_credentials", "http.response.status_code": float64(401)},
			absent: []string{"resetguard.decision", "resetguard.upstream", "resetguard.chat_session", "resetguard.credential",
				"resetguard.session_id", "user", "source", "event.id"},
		},
		{
			name: "hostile path cannot forge a second record",
			rec: &Record{Timestamp: ts, Action: "chat_session.reset", Outcome: OutcomeFailure, Reason: "bad_session_id",
				Method: "POST", Status: 400, Path: "/api/v1/ChatSession/1\n{\"schema\":\"forged\"}\u2028/Reset\x00", Route: "rest"},
			want: map[string]any{"url.path": "/api/v1/ChatSession/1\n{\"schema\":\"forged\"}\u2028/Reset\x00", "schema": Schema},
		},
	}
}

func TestRecordJSON(t *testing.T) {
	for _, tt := range recordJSONCases(fixtureEntity(t)) {
		t.Run(tt.name, func(t *testing.T) {
			line := encode(t, tt.rec)
			if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("record is not exactly one line: %q", line)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not JSON: %v: %s", err, line)
			}
			for path, want := range tt.want {
				got, ok := lookup(m, path)
				if !ok {
					t.Errorf("%s missing", path)
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", path, got, want)
				}
			}
			for _, path := range tt.absent {
				if _, ok := lookup(m, path); ok {
					t.Errorf("%s present, want absent: %s", path, line)
				}
			}
		})
	}
}

// TestRecordHoldsNoEntitySecrets checks the whole path from the upstream's
// bytes to the written line.
func TestRecordHoldsNoEntitySecrets(t *testing.T) {
	entity, err := os.ReadFile("../testdata/entities/reset.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(entity, &raw); err != nil {
		t.Fatal(err)
	}
	cs := fixtureEntity(t)
	line := encode(t, &Record{Action: "chat_session.reset", Outcome: OutcomeSuccess, ChatSession: cs, Upstream: &Upstream{Status: 200}})
	for _, k := range []string{"SessionKey", "FirstMessage", "LastMessage", "CustomerName", "CustomerEmail", "CustomerPhone", "CustomerHost", "CustomerAlias", "CustomerCompanyName"} {
		v, _ := raw[k].(string)
		if v == "" {
			t.Fatalf("fixture %s must be a non-empty string", k)
		}
		if strings.Contains(line, v) {
			t.Errorf("record leaks %s value %q", k, v)
		}
	}
}

func lookup(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = obj[p]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func BenchmarkSinkWrite(b *testing.B) {
	cs := fixtureEntity(b)
	rec := &Record{Timestamp: time.Now(), Action: "chat_session.reset", Allowed: true, Outcome: OutcomeSuccess,
		Decision: &Decision{Allow: true, Reasons: []string{"ok"}}, Upstream: &Upstream{Status: 200}, ChatSession: cs}
	sink := NewSink(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(discardWriter{}), zapcore.InfoLevel)))
	b.ReportAllocs()
	for b.Loop() {
		sink.Write(rec)
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// isEventID reports whether s is an event.id as NewEventID makes them: a
// version 4 UUID in lower-case hex.
func isEventID(s string) bool {
	return eventIDPattern.MatchString(s)
}

var eventIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestNewEventID: version 4 UUIDs, no two alike.
func TestNewEventID(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := NewEventID()
		if !isEventID(id) {
			t.Fatalf("event id %q is not a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("event id %q twice", id)
		}
		seen[id] = true
	}
}

func BenchmarkNewEventID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewEventID()
	}
}

// TestSourceIPAsECSIP: source.ip is ECS type ip, which Elasticsearch
// parses or refuses the whole document for; the record writes an
// address without its IPv6 zone, and no source at all for anything that
// is not an address.
func TestSourceIPAsECSIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.10":        "192.0.2.10",
		"2001:db8::1":       "2001:db8::1",
		"fe80::1%eth0":      "fe80::1",
		"::ffff:192.0.2.10": "::ffff:192.0.2.10",
		"@":                 "",
		"":                  "",
		"192.0.2.10:443":    "",
		"not an address":    "",
	} {
		r := &Record{Timestamp: time.Unix(0, 0), Action: "chat_session.reset", Outcome: OutcomeFailure, Reason: "x",
			Method: "POST", Status: 400, Path: "/", Route: "rest", SourceIP: in}
		var m map[string]any
		if err := json.Unmarshal([]byte(encode(t, r)), &m); err != nil {
			t.Fatal(err)
		}
		src, _ := m["source"].(map[string]any)
		if got, _ := src["ip"].(string); got != want || (want == "") != (src == nil) {
			t.Errorf("SourceIP %q: source %v, want ip %q", in, m["source"], want)
		}
	}
}
