package policy_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// atPointer is how a validation error names the instance location ptr.
func atPointer(ptr string) string { return "at '" + ptr + "'" }

// badName is how a validation error names a refused property name.
func badName(name string) string { return "invalid propertyName '" + name + "'" }

func reqHeaders(d map[string]any) map[string]any { return obj(obj(d, "request"), "headers") }

func reqQuery(d map[string]any) map[string]any { return obj(obj(d, "request"), "query") }

// anyFingerprint is a well-formed credential fingerprint.
const anyFingerprint = "0123456789abcdef0123456789abcdef"

// inputRejects break validInput, each in one way the schema must refuse.
var inputRejects = []struct {
	name string
	doc  func(d map[string]any)
	// want is part of the validation error's text: the instance
	// location and what is wrong there. (Property-name errors are
	// matched by name: jsonschema v6.0.3 reports them at a wrong
	// instance location, an aliasing bug in its propertyNames check.)
	want string
}{
	{"missing action", func(d map[string]any) { delete(d, "action") }, "missing property 'action'"},
	{"other action", func(d map[string]any) { d["action"] = "chat_session.pickup" }, atPointer("/action")},
	{"unknown route", func(d map[string]any) { d["route"] = "graphql" }, atPointer("/route")},
	{"missing session_id", func(d map[string]any) { delete(d, "session_id") }, "missing property 'session_id'"},
	{"session_id 0", func(d map[string]any) { d["session_id"] = json.Number("0") }, atPointer("/session_id")},
	{"negative session_id", func(d map[string]any) { d["session_id"] = json.Number("-5") }, atPointer("/session_id")},
	{"session_id past int32", func(d map[string]any) { d["session_id"] = json.Number("2147483648") }, atPointer("/session_id")},
	{"fractional session_id", func(d map[string]any) { d["session_id"] = json.Number("427.5") }, atPointer("/session_id")},
	{"session_id as a string", func(d map[string]any) { d["session_id"] = "427" }, atPointer("/session_id")},
	{"tenant not normalised", func(d map[string]any) { d["tenant"] = "cust12345" }, atPointer("/tenant")},
	{"tenant without digits", func(d map[string]any) { d["tenant"] = "Cust" }, atPointer("/tenant")},
	{"extra top-level key", func(d map[string]any) { d["authorization"] = "Basic Ym90OnB3" }, "additional properties 'authorization' not allowed"},
	{"missing request", func(d map[string]any) { delete(d, "request") }, "missing property 'request'"},
	{"missing time", func(d map[string]any) { delete(d, "time") }, "missing property 'time'"},
	{"time not in UTC", func(d map[string]any) { d["time"] = "2026-11-25T11:00:00+01:00" }, atPointer("/time")},
	{"time not a date", func(d map[string]any) { d["time"] = "2026-13-45T10:00:00Z" }, atPointer("/time")},
	{"time without zone", func(d map[string]any) { d["time"] = "2026-11-25T10:00:00" }, atPointer("/time")},

	{"header authorization present", func(d map[string]any) { reqHeaders(d)["authorization"] = []any{"Basic Ym90OnB3"} }, badName("authorization")},
	{"header cookie present", func(d map[string]any) { reqHeaders(d)["cookie"] = []any{"XSRF-TOKEN=abc"} }, badName("cookie")},
	{"header x-xsrf-token present", func(d map[string]any) { reqHeaders(d)["x-xsrf-token"] = []any{"abc"} }, badName("x-xsrf-token")},
	{"header so-apptoken present", func(d map[string]any) { reqHeaders(d)["so-apptoken"] = []any{"app-secret"} }, badName("so-apptoken")},
	{"header proxy-authorization present", func(d map[string]any) { reqHeaders(d)["proxy-authorization"] = []any{"Basic Ym90OnB3"} }, badName("proxy-authorization")},
	{"header set-cookie present", func(d map[string]any) { reqHeaders(d)["set-cookie"] = []any{"a=b"} }, badName("set-cookie")},
	{"header name not lower-case", func(d map[string]any) { reqHeaders(d)["Authorization"] = []any{"Basic Ym90OnB3"} }, badName("Authorization")},
	{"header name with a space", func(d map[string]any) { reqHeaders(d)["user agent"] = []any{"x"} }, badName("user agent")},
	{"header value not a list", func(d map[string]any) { reqHeaders(d)["user-agent"] = "bot/1.0" }, atPointer("/request/headers/user-agent")},
	{"header with no value", func(d map[string]any) { reqHeaders(d)["user-agent"] = []any{} }, atPointer("/request/headers/user-agent")},
	{"query ticket present", func(d map[string]any) { reqQuery(d)["ticket"] = []any{"7T:abc"} }, badName("ticket")},
	{"query access token in another case", func(d map[string]any) { reqQuery(d)["Access_Token"] = []any{"abc"} }, badName("Access_Token")},
	{"query password present", func(d map[string]any) { reqQuery(d)["password"] = []any{"pw"} }, badName("password")},
	{"query value not a list", func(d map[string]any) { reqQuery(d)["x"] = "1" }, atPointer("/request/query/x")},
	{"request method GET", func(d map[string]any) { obj(d, "request")["method"] = "GET" }, atPointer("/request/method")},
	{"request path relative", func(d map[string]any) { obj(d, "request")["path"] = "api/v1/ChatSession/427/Reset" }, atPointer("/request/path")},
	{"request without id", func(d map[string]any) { obj(d, "request")["id"] = "" }, atPointer("/request/id")},
	{"request with a body", func(d map[string]any) { obj(d, "request")["body"] = "{}" }, "additional properties 'body' not allowed"},
	{"request without headers", func(d map[string]any) { delete(obj(d, "request"), "headers") }, "missing property 'headers'"},

	{"bad fingerprint: upper-case hex", func(d map[string]any) {
		obj(d, "credential")["fingerprint"] = "C6548C08CD277C52EE38B9BC4A544830"
	}, atPointer("/credential/fingerprint")},
	{"bad fingerprint: too short", func(d map[string]any) {
		obj(d, "credential")["fingerprint"] = "c6548c08cd277c52ee38b9bc4a54483"
	}, atPointer("/credential/fingerprint")},
	{"bad fingerprint: full sha256", func(d map[string]any) {
		obj(d, "credential")["fingerprint"] = strings.Repeat("c6548c08", 8)
	}, atPointer("/credential/fingerprint")},
	{"bad fingerprint: not hex", func(d map[string]any) {
		obj(d, "credential")["fingerprint"] = "8A:Cust12345.token-token-token-t"
	}, atPointer("/credential/fingerprint")},
	{"missing fingerprint", func(d map[string]any) { delete(obj(d, "credential"), "fingerprint") }, "missing property 'fingerprint'"},
	{"credential value", func(d map[string]any) { obj(d, "credential")["token"] = "8A:Cust12345.abc" }, "additional properties 'token' not allowed"},
	{"unknown scheme", func(d map[string]any) { obj(d, "credential")["scheme"] = "digest" }, atPointer("/credential/scheme")},
	{"scheme and kind disagree", func(d map[string]any) { obj(d, "credential")["kind"] = "basic" }, atPointer("/credential/kind")},
	{"basic without user name", func(d map[string]any) {
		d["credential"] = map[string]any{"scheme": "basic", "kind": "basic", "fingerprint": anyFingerprint, "tenant": ""}
	}, "missing property 'username'"},
	{"basic with empty user name", func(d map[string]any) {
		d["credential"] = map[string]any{"scheme": "basic", "kind": "basic", "fingerprint": anyFingerprint, "tenant": "", "username": ""}
	}, atPointer("/credential/username")},
	{"user name on a token", func(d map[string]any) { obj(d, "credential")["username"] = "bot" }, atPointer("/credential")},
	{"online token without tenant", func(d map[string]any) {
		d["credential"] = map[string]any{"scheme": "bearer", "kind": "superoffice_token", "fingerprint": anyFingerprint, "tenant": ""}
	}, atPointer("/credential/tenant")},
	{"online token without tenant key", func(d map[string]any) {
		d["credential"] = map[string]any{"scheme": "bearer", "kind": "superoffice_token", "fingerprint": anyFingerprint}
	}, "missing property 'tenant'"},
	{"ticket naming a tenant", func(d map[string]any) {
		d["credential"] = map[string]any{"scheme": "soticket", "kind": "ticket", "fingerprint": anyFingerprint, "tenant": "Cust12345"}
	}, atPointer("/credential/tenant")},

	{"missing principal", func(d map[string]any) { delete(d, "principal") }, "missing property 'principal'"},
	{"unknown principal source", func(d map[string]any) { obj(d, "principal")["source"] = "header" }, atPointer("/principal/source")},
	{"unknown user type", func(d map[string]any) { obj(d, "principal")["user_type"] = "Bot" }, atPointer("/principal/user_type")},
	{"associate id as a string", func(d map[string]any) { obj(d, "principal")["associate_id"] = "42" }, atPointer("/principal/associate_id")},
	{"licenses not strings", func(d map[string]any) { obj(d, "principal")["licenses"] = []any{json.Number("1")} }, atPointer("/principal/licenses/0")},
	{"extra principal key", func(d map[string]any) { obj(d, "principal")["password"] = "pw" }, "additional properties 'password' not allowed"},
	{"unestablished principal with details", func(d map[string]any) {
		d["principal"] = map[string]any{"source": "none", "subject": "bot@cust12345"}
	}, "maxProperties: got 2, want 1"},

	{"session containing SessionKey", func(d map[string]any) { obj(d, "session")["SessionKey"] = "sk-4f9e" }, badName("SessionKey")},
	{"session containing sessionkey in lower case", func(d map[string]any) { obj(d, "session")["sessionkey"] = "sk-4f9e" }, badName("sessionkey")},
	{"session containing FirstMessage", func(d map[string]any) { obj(d, "session")["FirstMessage"] = "hi" }, badName("FirstMessage")},
	{"session containing LastMessage", func(d map[string]any) { obj(d, "session")["LastMessage"] = "bye" }, badName("LastMessage")},
	{"session containing CustomerEmail", func(d map[string]any) { obj(d, "session")["CustomerEmail"] = "a@example.com" }, badName("CustomerEmail")},
	{"session containing CustomerConsented", func(d map[string]any) { obj(d, "session")["CustomerConsented"] = false }, badName("CustomerConsented")},
	{"session without ChatSessionId", func(d map[string]any) { delete(obj(d, "session"), "ChatSessionId") }, "missing property 'ChatSessionId'"},
	{"session without Status", func(d map[string]any) { delete(obj(d, "session"), "Status") }, "missing property 'Status'"},
	{"session status not a name", func(d map[string]any) { obj(d, "session")["Status"] = json.Number("9") }, atPointer("/session/Status")},
	{"session status unknown", func(d map[string]any) { obj(d, "session")["Status"] = "Active" }, atPointer("/session/Status")},
	{"session user without id", func(d map[string]any) { obj(d, "session")["User"] = map[string]any{"Name": "sare"} }, "missing property 'AssociateId'"},
	{"session user with an unknown key", func(d map[string]any) { obj(obj(d, "session"), "User")["Password"] = "pw" }, "additional properties 'Password' not allowed"},
	{"session date not ISO", func(d map[string]any) { obj(d, "session")["WhenRequested"] = "04.07.2019 02:30" }, atPointer("/session/WhenRequested")},
	{"session not an object", func(d map[string]any) { d["session"] = nil }, atPointer("/session")},
}

func TestInputSchemaRejects(t *testing.T) {
	sch := inputSchema(t)
	for _, tt := range inputRejects {
		t.Run(tt.name, func(t *testing.T) {
			doc := mutate(t, tt.doc)
			err := sch.Validate(doc)
			if err == nil {
				b, _ := json.Marshal(doc)
				t.Fatalf("validates: %s", b)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("the error does not say %q:\n%v", tt.want, err)
			}
		})
	}
}
