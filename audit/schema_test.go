package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	auditSchemaFile = "../testdata/schema/resetguard.audit.v1.schema.json"
	auditSchemaID   = "https://resetguard.dev/schema/resetguard.audit/v1"
)

var (
	auditSchemaOnce sync.Once
	auditSchemaDoc  any
	auditSchemaComp *jsonschema.Schema
	auditSchemaErr  error
)

// auditSchema compiles resetguard.audit/v1 once, with format assertions on
// (2020-12 leaves them off by default).
func auditSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	auditSchemaOnce.Do(func() {
		f, err := os.Open(auditSchemaFile)
		if err != nil {
			auditSchemaErr = err
			return
		}
		defer f.Close()
		if auditSchemaDoc, err = jsonschema.UnmarshalJSON(f); err != nil {
			auditSchemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource(auditSchemaID, auditSchemaDoc); err != nil {
			auditSchemaErr = err
			return
		}
		auditSchemaComp, auditSchemaErr = c.Compile(auditSchemaID)
	})
	if auditSchemaErr != nil {
		t.Fatalf("%s: %v", auditSchemaFile, auditSchemaErr)
	}
	return auditSchemaComp
}

// caddyLine writes r through a Sink whose logger is named and encoded as
// Caddy's http.handlers.reset_guard.audit logger is (zap JSON encoder, so
// the envelope keys level, ts, logger and msg sit beside the record's).
func caddyLine(t *testing.T, r *Record) string {
	t.Helper()
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&buf), zapcore.InfoLevel)).
		Named("http.handlers.reset_guard").Named("audit")
	NewSink(log).Write(r)
	line := strings.TrimSuffix(buf.String(), "\n")
	if strings.Contains(line, "\n") {
		t.Fatalf("the sink wrote more than one line: %s", buf.String())
	}
	return line
}

func decodeLine(t *testing.T, line string) map[string]any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
	if err != nil {
		t.Fatalf("record is not JSON: %v\n%s", err, line)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("record is a %T: %s", v, line)
	}
	return m
}

// outcomeTime is when the outcome records were written.
var outcomeTime = time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)

// outcomeBase holds what every guarded request's record has: an event.id
// of its own, and one request id (as from a client that reuses its
// X-Request-Id).
func outcomeBase() *Record {
	return &Record{
		Timestamp: outcomeTime, EventID: NewEventID(), RequestID: "9b2f6a3e-5f1c-4f7e-9a39-0c1d2e3f4a5b",
		Action: "chat_session.reset", Duration: 2345678, Method: "POST", Path: "/api/v1/ChatSession/427/Reset",
		SourceIP: "192.0.2.10", Route: "rest",
	}
}

// afterIdentity fills what steps 2-4 establish.
func afterIdentity(r *Record) {
	r.SessionID = 427
	r.CredScheme, r.Fingerprint = "basic", "0123456789abcdef0123456789abcdef"
	r.UserName = "bot"
	r.PrincipalSource = "none"
}

func outcomeDecision(allow, dryRun bool, reasons ...string) *Decision {
	return &Decision{Allow: allow, DryRun: dryRun, Reasons: reasons, Query: "data.resetguard.decision",
		Revision: "sha256:00112233aabbccdd", Eval: 81234}
}

// outcomes fill an outcomeBase record for each way a guarded request can
// end, as the handler fills them; cs is the entity the backend answered.
var outcomes = map[string]func(r *Record, cs *ChatSession){
	"allowed success with entity": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Status = true, OutcomeSuccess, 200
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 200, Duration: 1500000, ContentType: "application/json; charset=utf-8", EntityRead: true}
		r.ChatSession = cs
	},
	"allowed via JWT on the Agents route": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Route, r.Path = "agents", "/Cust12345/api/v1/Agents/Chat/ResetChatSession"
		r.CredScheme = "bearer"
		r.UserID, r.UserName, r.UserDomain, r.PrincipalSource = "42", "chatbot@example.com", "Cust12345", "jwt"
		r.Allowed, r.Outcome, r.Status = true, OutcomeSuccess, 200
		r.Decision = outcomeDecision(true, false, "bot_handoff")
		r.Upstream = &Upstream{Status: 200, Duration: 1500000, ContentType: "application/xml", EntityRead: true}
		r.ChatSession = cs
	},
	"allowed, upstream 500": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeFailure, "upstream_status", 500
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 500, Duration: 900000, ContentType: "application/json"}
	},
	"allowed, upstream unreachable": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeFailure, "upstream_error", 502
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 0, Duration: 300000, Error: "upstream unreachable"}
	},
	"allowed, upstream unreachable and client gone": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeFailure, "client_gone", 499
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 0, Duration: 300000, Error: "client closed the request"}
	},
	// After the request may have reached the backend, every ending
	// without a readable answer is unknown.
	"allowed, upstream hung up": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "upstream_error", 502
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 0, Duration: 300000, Error: "upstream failed"}
	},
	"allowed, upstream timed out": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "upstream_error", 504
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 0, Duration: 30000000000, Error: "upstream timed out"}
	},
	"allowed, upstream cut its body": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "upstream_incomplete", 502
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 200, Duration: 300000, ContentType: "application/json", Error: "upstream response body incomplete"}
	},
	"allowed, client gone before the backend's headers": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "client_gone", 499
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 0, Duration: 1000000000, Error: "client closed the request"}
	},
	"allowed, client gone during the backend's body": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "client_gone", 499
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 200, Duration: 1000000000, ContentType: "application/json", Error: "client closed the request"}
	},
	"allowed, panic after forwarding": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "panic", 500
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{}
	},
	"allowed, upstream answered null": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeFailure, "upstream_no_entity", 200
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 200, Duration: 300000, ContentType: "application/json",
			EntityError: "audit: decode entity: JSON null: no chat session entity in body"}
	},
	"allowed, entity not read (too large)": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "entity_not_read", 200
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 200, Duration: 700000, ContentType: "application/json",
			EntityError: "response body larger than max_response_body"}
	},
	"allowed, entity id mismatch": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.SessionID = 428
		r.Allowed, r.Outcome, r.Reason, r.Status = true, OutcomeUnknown, "entity_id_mismatch", 200
		r.Decision = outcomeDecision(true, false)
		r.Upstream = &Upstream{Status: 200, Duration: 700000, ContentType: "application/json", EntityRead: true}
		r.ChatSession = cs
	},
	"denied by policy": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.UserName = "mallory"
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "mallory_refused", 403
		r.Decision = outcomeDecision(false, false, "mallory_refused")
	},
	"denied by policy without reasons": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "policy_denied", 403
		r.Decision = outcomeDecision(false, false)
	},
	"denied, policy error": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "policy_error", 503
		r.Decision = outcomeDecision(false, false, "policy_error")
	},
	"unauthenticated": func(r *Record, cs *ChatSession) {
		r.SessionID = 427
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "missing_credentials", 401
	},
	"identity not established": func(r *Record, cs *ChatSession) {
		r.SessionID = 427
		r.CredScheme, r.Fingerprint, r.UserName = "bearer", "fedcba9876543210fedcba9876543210", ""
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "invalid_token", 401
	},
	"bad session id": func(r *Record, cs *ChatSession) {
		r.Path = "/api/v1/ChatSession/abc/Reset"
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "bad_session_id", 400
	},
	"wrong method": func(r *Record, cs *ChatSession) {
		r.Method = "GET"
		r.UserDomain = "Cust12345"
		r.Path = "/Cust12345/api/v1/ChatSession/427/Reset"
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "method_not_allowed", 405
	},
	"dry run forwards a denied call": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.UserName = "mallory"
		r.Allowed, r.Outcome, r.Status = true, OutcomeSuccess, 200
		r.Decision = outcomeDecision(false, true, "mallory_refused")
		r.Upstream = &Upstream{Status: 200, Duration: 1500000, ContentType: "application/json", EntityRead: true}
		r.ChatSession = cs
	},
	"client gone during the policy": func(r *Record, cs *ChatSession) {
		afterIdentity(r)
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "client_gone", 499
		r.Decision = outcomeDecision(false, false, "client_gone")
	},
	"panic before the policy": func(r *Record, cs *ChatSession) {
		r.SourceIP = ""
		r.Outcome, r.Reason, r.Status = OutcomeFailure, "panic", 500
	},
}

// outcomeRecords builds one record per way a guarded request can end.
func outcomeRecords(t *testing.T) map[string]*Record {
	cs := fixtureEntity(t)
	recs := make(map[string]*Record, len(outcomes))
	for name, fill := range outcomes {
		r := outcomeBase()
		fill(r, cs)
		recs[name] = r
	}
	return recs
}

// TestSchemaAcceptsEveryOutcome encodes a record for every way a guarded
// request can end, as Caddy's logger would, and validates it.
func TestSchemaAcceptsEveryOutcome(t *testing.T) {
	sch := auditSchema(t)
	for name, r := range outcomeRecords(t) {
		t.Run(name, func(t *testing.T) {
			line := caddyLine(t, r)
			if err := sch.Validate(decodeLine(t, line)); err != nil {
				t.Errorf("record does not validate: %v\n%s", err, line)
			}
		})
	}
}

// stripEnvelope turns a logger copy into the durable file's shape: no
// Caddy envelope.
func stripEnvelope(m map[string]any) {
	for _, k := range []string{"level", "ts", "logger", "msg"} {
		delete(m, k)
	}
}

// withChain gives a record a well-formed resetguard.chain.
func withChain(m map[string]any) {
	objAt(m, "resetguard")["chain"] = map[string]any{"seq": json.Number("12"), "prev": strings.Repeat("cd", 32), "hash": strings.Repeat("ef", 32)}
}

// TestSchemaAcceptsFileSinkFields checks the fields only some copies
// carry: the durable file's chain link and the fallback mark.
func TestSchemaAcceptsFileSinkFields(t *testing.T) {
	sch := auditSchema(t)
	line := caddyLine(t, outcomeRecords(t)["allowed success with entity"])
	for name, mut := range map[string]func(m map[string]any){
		"chain in the file's line (no envelope)": func(m map[string]any) {
			stripEnvelope(m)
			withChain(m)
		},
		"audit_fallback": func(m map[string]any) {
			m["resetguard"].(map[string]any)["audit_fallback"] = true
		},
		"opt-in customer fields": func(m map[string]any) {
			cs := m["resetguard"].(map[string]any)["chat_session"].(map[string]any)
			cs["customer"] = map[string]any{"customer_email": "hmac-sha256:" + strings.Repeat("0f", 32), "customer_host": "visitor-host"}
		},
		"ts as a string": func(m map[string]any) { m["ts"] = "2026-11-25T10:00:00.123Z" },
	} {
		t.Run(name, func(t *testing.T) {
			m := decodeLine(t, line)
			mut(m)
			if err := sch.Validate(m); err != nil {
				t.Errorf("record does not validate: %v", err)
			}
		})
	}
}

// schemaBadEdits break the encoded "allowed success with entity" record.
var schemaBadEdits = map[string]func(m map[string]any){
	"chat_session.session_key": func(m map[string]any) {
		objAt(m, "resetguard", "chat_session")["session_key"] = "sk-4f9e2c1b-session-key"
	},
	"chat_session.customer_name outside the opt-in object": func(m map[string]any) {
		objAt(m, "resetguard", "chat_session")["customer_name"] = "Nitzsche Group"
	},
	"opt-in customer object with another field": func(m map[string]any) {
		objAt(m, "resetguard", "chat_session")["customer"] = map[string]any{"first_message": "hello"}
	},
	"credential value": func(m map[string]any) {
		objAt(m, "resetguard", "credential")["value"] = "Basic Ym90Omh1bnRlcjI="
	},
	"unknown top-level field": func(m map[string]any) { m["authorization"] = "Basic x" },
	"outcome success with type denied, upstream kept": func(m map[string]any) {
		objAt(m, "event")["type"] = []any{"denied"}
	},
	"missing schema": func(m map[string]any) { delete(m, "schema") },
	"wrong schema":   func(m map[string]any) { m["schema"] = "resetguard.audit/v2" },
	"chain with a short hash": func(m map[string]any) {
		stripEnvelope(m)
		objAt(m, "resetguard")["chain"] = map[string]any{"seq": json.Number("1"), "prev": strings.Repeat("0", 64), "hash": "abc"}
	},
	"chain with seq 0": func(m map[string]any) {
		stripEnvelope(m)
		objAt(m, "resetguard")["chain"] = map[string]any{"seq": json.Number("0"), "prev": strings.Repeat("0", 64), "hash": strings.Repeat("0", 64)}
	},
	// The chain is the durable file's: the Caddy logger's copy of an
	// ECS 8.11.0 record never has it.
	"chain on the logger copy": withChain,
	// ECS 8.11.0 conformance: a full version, a category whose expected
	// types include allowed, an event.id of the record's own.
	"ecs.version without its patch level": func(m map[string]any) { objAt(m, "ecs")["version"] = "8.11" },
	"ecs.version of another release":      func(m map[string]any) { objAt(m, "ecs")["version"] = "8.17.0" },
	"iam, whose types ECS 8.11 does not list allowed under": func(m map[string]any) {
		objAt(m, "event")["category"] = []any{"api", "iam"}
	},
	"no event.id":                       func(m map[string]any) { delete(objAt(m, "event"), "id") },
	"a client's request id as event.id": func(m map[string]any) { objAt(m, "event")["id"] = "it-bot-1" },
	"another logger":                    func(m map[string]any) { m["logger"] = "http.log.access" },
	// The encoder always writes UTC; a zone offset means the line
	// was not written by it.
	"timestamp with an offset": func(m map[string]any) { m["@timestamp"] = "2026-11-25T11:00:00+01:00" },
	"entity date with an offset": func(m map[string]any) {
		objAt(m, "resetguard", "chat_session")["when_started"] = "2002-10-20T02:30:52.413044+02:00"
	},
}

// schemaBadRecords are records a caller can build through Record that
// break an invariant: a copy of the outcome named by from, changed by mut.
var schemaBadRecords = map[string]struct {
	from string
	mut  func(r *Record, cs *ChatSession)
}{
	"outcome success but denied": {"allowed success with entity", func(r *Record, cs *ChatSession) {
		r.Allowed, r.Upstream, r.ChatSession = false, nil, nil
	}},
	"allowed without upstream": {"denied by policy", func(r *Record, cs *ChatSession) {
		r.Allowed = true
	}},
	"forwarded but recorded as denied": {"allowed, upstream 500", func(r *Record, cs *ChatSession) {
		r.Allowed = false
	}},
	"allowed although the policy said no and no dry run": {"allowed success with entity", func(r *Record, cs *ChatSession) {
		r.Decision = &Decision{Allow: false, Reasons: []string{"x"}, Query: "data.q", Revision: "r"}
	}},
	"allowed without a decision": {"allowed success with entity", func(r *Record, cs *ChatSession) { r.Decision = nil }},
	"success without the entity": {"allowed success with entity", func(r *Record, cs *ChatSession) {
		r.ChatSession = nil
		r.Upstream = &Upstream{Status: 200, EntityRead: false}
	}},
	"success with a reason": {"allowed success with entity", func(r *Record, cs *ChatSession) { r.Reason = "upstream_status" }},
	"success with a 500": {"allowed success with entity", func(r *Record, cs *ChatSession) {
		r.Status = 500
		r.Upstream = &Upstream{Status: 500, EntityRead: true}
	}},
	"failure without a reason": {"unauthenticated", func(r *Record, cs *ChatSession) { r.Reason = "" }},
	"denied with outcome unknown": {"unauthenticated", func(r *Record, cs *ChatSession) {
		r.Outcome = OutcomeUnknown
	}},
	"denied with status 200": {"unauthenticated", func(r *Record, cs *ChatSession) { r.Status = 200 }},
	"chat_session without entity_read": {"allowed, upstream 500", func(r *Record, cs *ChatSession) {
		r.ChatSession = cs
	}},
	"entity_read without chat_session": {"allowed, entity id mismatch", func(r *Record, cs *ChatSession) {
		r.ChatSession = nil
	}},
	"decision without a credential": {"denied by policy", func(r *Record, cs *ChatSession) {
		r.CredScheme, r.Fingerprint = "", ""
	}},
	"decision without a session id": {"denied by policy", func(r *Record, cs *ChatSession) {
		r.SessionID = 0
	}},
	"decision for a GET":       {"denied by policy", func(r *Record, cs *ChatSession) { r.Method = "GET" }},
	"principal source unknown": {"allowed success with entity", func(r *Record, cs *ChatSession) { r.PrincipalSource = "ldap" }},
	"upstream error with success": {"allowed success with entity", func(r *Record, cs *ChatSession) {
		r.Upstream = &Upstream{Status: 200, EntityRead: true, Error: "upstream timed out"}
	}},
	"fingerprint too short": {"allowed success with entity", func(r *Record, cs *ChatSession) { r.Fingerprint = "abc" }},
	// After forwarding, failure only when the backend cannot have acted.
	"failure after the backend hung up": {"allowed, upstream hung up", func(r *Record, cs *ChatSession) {
		r.Outcome = OutcomeFailure
	}},
	"failure after a timeout": {"allowed, upstream timed out", func(r *Record, cs *ChatSession) { r.Outcome = OutcomeFailure }},
	"failure after the backend cut its body": {"allowed, upstream cut its body", func(r *Record, cs *ChatSession) {
		r.Outcome = OutcomeFailure
	}},
	"failure, client gone after the backend answered": {"allowed, client gone during the backend's body", func(r *Record, cs *ChatSession) {
		r.Outcome = OutcomeFailure
	}},
	"failure, client gone before the backend's headers": {"allowed, client gone before the backend's headers", func(r *Record, cs *ChatSession) {
		u := *r.Upstream
		u.Error = "upstream failed"
		r.Outcome, r.Upstream = OutcomeFailure, &u
	}},
	"failure after a panic past forwarding": {"allowed, panic after forwarding", func(r *Record, cs *ChatSession) {
		r.Outcome = OutcomeFailure
	}},
	"failure, unreachable with a status": {"allowed, upstream unreachable", func(r *Record, cs *ChatSession) {
		u := *r.Upstream
		u.Status = 502
		r.Upstream = &u
	}},
	"upstream_status failure on a 2xx": {"allowed, upstream 500", func(r *Record, cs *ChatSession) {
		u := *r.Upstream
		u.Status = 204
		r.Status, r.Upstream = 204, &u
	}},
	"upstream error with a 2xx to the client": {"allowed, upstream hung up", func(r *Record, cs *ChatSession) { r.Status = 200 }},
}

func objAt(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		m = m[k].(map[string]any)
	}
	return m
}

// TestSchemaRefusesBadRecords: records that break the format or its
// invariants, whether built through Record or edited after encoding.
func TestSchemaRefusesBadRecords(t *testing.T) {
	sch := auditSchema(t)
	recs := outcomeRecords(t)
	success := recs["allowed success with entity"]
	cases := map[string]map[string]any{}
	for name, mut := range schemaBadEdits {
		m := decodeLine(t, caddyLine(t, success))
		mut(m)
		cases[name] = m
	}
	for name, bad := range schemaBadRecords {
		c := *recs[bad.from]
		bad.mut(&c, success.ChatSession)
		cases[name] = decodeLine(t, caddyLine(t, &c))
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			err := sch.Validate(doc)
			if err == nil {
				raw, _ := json.Marshal(doc)
				t.Fatalf("record validates, want a failure:\n%s", raw)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}

// TestSchemaDescribesEveryProperty: every property the schema defines
// carries a description, so docs/audit.md and SIEM mappings can rely on it.
func TestSchemaDescribesEveryProperty(t *testing.T) {
	auditSchema(t)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch n := v.(type) {
		case map[string]any:
			if props, ok := n["properties"].(map[string]any); ok {
				for name, p := range props {
					ps, ok := p.(map[string]any)
					if !ok {
						continue
					}
					// Subschemas in allOf/if/then only narrow properties
					// defined elsewhere; only definitions need a description.
					if d, _ := ps["description"].(string); d == "" && !strings.Contains(path, "/allOf/") {
						t.Errorf("%s/properties/%s has no description", path, name)
					}
				}
			}
			for k, c := range n {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range n {
				walk(path+"/"+jsonIndex(i), c)
			}
		}
	}
	walk("#", auditSchemaDoc)
}

func jsonIndex(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestDocExamplesValidate keeps the example records of docs/audit.md in
// step with the schema: every ```json block that is a record validates.
func TestDocExamplesValidate(t *testing.T) {
	sch := auditSchema(t)
	doc, err := os.ReadFile("../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(doc), "```json\n")[1:] {
		text, _, ok := strings.Cut(block, "```")
		if !ok {
			t.Fatalf("unterminated json block: %.80s", block)
		}
		m := decodeLine(t, text)
		if _, ok := m["schema"]; !ok {
			continue
		}
		n++
		if err := sch.Validate(m); err != nil {
			t.Errorf("docs/audit.md example does not validate: %v\n%s", err, text)
		}
	}
	if n < 10 {
		t.Errorf("found %d example records in docs/audit.md, want one per outcome", n)
	}
}

// TestSchemaAcceptsEarlierRecords: records written before the record
// conformed to ECS 8.11.0 are still resetguard.audit/v1 records, since
// durable files keep them (and their chain still verifies, see
// TestVerifyGoldenFiles): ecs.version "8.11", a request's category
// ["api", "iam"], event.id equal to http.request.id (none on a repair
// record), and the chain on the Caddy logger's copy too. Each kind is
// turned back into that shape; a record mixing the two is refused.
func TestSchemaAcceptsEarlierRecords(t *testing.T) {
	sch := auditSchema(t)
	earlier := func(m map[string]any) {
		objAt(m, "ecs")["version"] = "8.11"
		ev := objAt(m, "event")
		if objAt(m, "resetguard")["kind"] == KindRepair {
			delete(ev, "id")
		} else {
			ev["category"] = []any{"api", "iam"}
			ev["id"] = objAt(m, "http", "request")["id"]
		}
		withChain(m)
	}
	for name, r := range kindRecords(t) {
		t.Run(name, func(t *testing.T) {
			m := decodeLine(t, caddyLine(t, r))
			earlier(m)
			if err := sch.Validate(m); err != nil {
				t.Errorf("earlier logger copy does not validate: %v", err)
			}
			stripEnvelope(m)
			if err := sch.Validate(m); err != nil {
				t.Errorf("earlier file line does not validate: %v", err)
			}
			if r.Kind == KindRepair {
				return
			}
			objAt(m, "ecs")["version"] = ECSVersion
			if err := sch.Validate(m); err == nil {
				t.Errorf("an %s record with [api, iam] and the request id as event.id validates", ECSVersion)
			}
		})
	}
}
