package policy_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/resetguard/caddy-resetguard/policy"
)

const (
	inputSchemaFile = "../testdata/schema/resetguard.input.v1.schema.json"
	inputSchemaID   = "https://resetguard.dev/schema/resetguard.input/v1"
	examplesDir     = "../testdata/policies"
)

// exampleNames are the example policies of testdata/policies, each in its
// own directory, package resetguard.examples.<name>.
var exampleNames = []string{"bots_only", "own_sessions", "session_state", "tenant_isolation", "business_hours"}

// inputSchema compiles the resetguard.input/v1 schema, with format
// assertions on (2020-12 leaves them off by default).
func inputSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc := readJSONFile(t, inputSchemaFile)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(inputSchemaID, doc); err != nil {
		t.Fatalf("adding %s: %v", inputSchemaFile, err)
	}
	sch, err := c.Compile(inputSchemaID)
	if err != nil {
		t.Fatalf("compiling %s: %v", inputSchemaFile, err)
	}
	return sch
}

func readJSONFile(t testing.TB, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// parseJSON decodes s as the schema library expects (numbers as
// json.Number).
func parseJSON(t testing.TB, s string) any {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parsing %s: %v", s, err)
	}
	return doc
}

// valueJSON is what a policy sees of in: the OPA value as plain Go values.
func valueJSON(t testing.TB, in *policy.Input) any {
	t.Helper()
	v, err := ast.JSON(in.Value())
	if err != nil {
		t.Fatalf("ast.JSON: %v", err)
	}
	return v
}

func TestInputSchemaIsDraft2020WithItsID(t *testing.T) {
	doc, ok := readJSONFile(t, inputSchemaFile).(map[string]any)
	if !ok {
		t.Fatal("the schema is not an object")
	}
	if got := doc["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", got)
	}
	if got := doc["$id"]; got != inputSchemaID {
		t.Errorf("$id = %v, want %s", got, inputSchemaID)
	}
	inputSchema(t)
}

// TestInputSchemaDocumentsEveryProperty walks the schema: every property
// has a description, and every object level it defines is closed
// (additionalProperties false), except the session entity, whose other
// keys pass through.
func TestInputSchemaDocumentsEveryProperty(t *testing.T) {
	open := map[string]bool{"/$defs/session": true}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch n := v.(type) {
		case map[string]any:
			if props, ok := n["properties"].(map[string]any); ok && !strings.Contains(path, "/allOf/") && !strings.Contains(path, "/if") {
				for name, p := range props {
					ps, _ := p.(map[string]any)
					if d, _ := ps["description"].(string); strings.TrimSpace(d) == "" {
						t.Errorf("%s/properties/%s has no description", path, name)
					}
				}
				if ap, ok := n["additionalProperties"]; !open[path] && (!ok || ap != false) {
					t.Errorf("%s defines properties but is not closed (additionalProperties %v)", path, ap)
				}
			}
			for k, c := range n {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range n {
				walk(path+"/"+strconv.Itoa(i), c)
			}
		}
	}
	walk("", readJSONFile(t, inputSchemaFile))
}

// TestInputSchemaAcceptsInputValues validates what Input.Value produces,
// as the policy sees it, for the shapes the handler builds.
func TestInputSchemaAcceptsInputValues(t *testing.T) {
	sch := inputSchema(t)
	cet := time.FixedZone("CET", 3600)
	base := func() policy.Input {
		return policy.Input{
			Action:    "chat_session.reset",
			Route:     "rest",
			SessionID: 427,
			Tenant:    "Cust12345",
			Request: policy.Request{
				ID:       "0acb283f-366a-42cb-bc52-e982bcf97f25",
				Method:   "POST",
				Path:     "/Cust12345/api/v1/ChatSession/427/Reset",
				Host:     "sod2.superoffice.com",
				RemoteIP: "203.0.113.9",
				Headers:  map[string][]string{"user-agent": {"bot/1.0"}},
				Query:    map[string][]string{},
			},
			Credential: policy.Credential{Scheme: "bearer", Kind: "superoffice_token", Fingerprint: "c6548c08cd277c52ee38b9bc4a544830", Tenant: "Cust12345"},
			Principal:  policy.Principal{Source: "none"},
			Time:       time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		}
	}
	tests := []struct {
		name   string
		modify func(in *policy.Input)
	}{
		{"online bearer token", func(*policy.Input) {}},
		{"online token naming the tenant in another case", func(in *policy.Input) { in.Credential.Tenant = "cust12345" }},
		{"onsite basic", func(in *policy.Input) {
			in.Tenant = ""
			in.Request.Path = "/SuperOffice/api/v1/ChatSession/427/Reset"
			in.Credential = policy.Credential{Scheme: "basic", Kind: "basic", Fingerprint: "0123456789abcdef0123456789abcdef", Username: "chatbot"}
		}},
		{"soticket", func(in *policy.Input) {
			in.Credential = policy.Credential{Scheme: "soticket", Kind: "ticket", Fingerprint: "ffffffffffffffffffffffffffffffff"}
		}},
		{"xsrf", func(in *policy.Input) {
			in.Tenant = ""
			in.Credential = policy.Credential{Scheme: "xsrf", Kind: "xsrf", Fingerprint: "00000000000000000000000000000000"}
		}},
		{"agents route", func(in *policy.Input) {
			in.Route = "agents"
			in.SessionID = 831
			in.Request.Path = "/Cust12345/api/v1/Agents/Chat/ResetChatSession"
			in.Request.Headers["content-type"] = []string{"application/json"}
		}},
		{"soap route", func(in *policy.Input) {
			in.Route = "soap"
			in.Request.Path = "/Cust12345/Remote/Services88/Chat.svc"
		}},
		{"largest session id", func(in *policy.Input) { in.SessionID = 2147483647 }},
		{"smallest session id", func(in *policy.Input) { in.SessionID = 1 }},
		{"many headers and query values", func(in *policy.Input) {
			in.Request.Headers = map[string][]string{
				"user-agent":      {"bot/1.0"},
				"accept":          {"application/json", "text/json"},
				"x-request-id":    {"abc"},
				"x-forwarded-for": {"198.51.100.1, 10.0.0.1"},
				"content-type":    {"application/json; charset=utf-8"},
			}
			in.Request.Query = map[string][]string{"x": {"1", "2"}, "$select": {"Status"}, "empty": {""}}
		}},
		{"no headers, nil maps", func(in *policy.Input) {
			in.Request.Headers = nil
			in.Request.Query = nil
		}},
		{"ipv6 client and host with port", func(in *policy.Input) {
			in.Request.RemoteIP = "2001:db8::1"
			in.Request.Host = "[2001:db8::2]:8443"
		}},
		{"time with nanoseconds in another zone", func(in *policy.Input) {
			in.Time = time.Date(2026, 3, 29, 3, 30, 0, 123456789, cet)
		}},
		{"time with a monotonic reading", func(in *policy.Input) { in.Time = time.Now() }},
		{"principal from the backend", func(in *policy.Input) { in.Principal.Source = "backend" }},
		{"principal from a jwt", func(in *policy.Input) {
			in.Principal.Source = "jwt"
			in.Credential.Kind = "jwt"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.modify(&in)
			doc := valueJSON(t, &in)
			if err := sch.Validate(doc); err != nil {
				b, _ := json.Marshal(doc)
				t.Errorf("input %s\ndoes not validate: %#v", b, err)
			}
		})
	}
}

// validInput is a complete input as it will look once identity and the
// session lookup land: every optional field present.
const validInput = `{
  "action": "chat_session.reset",
  "route": "rest",
  "session_id": 427,
  "tenant": "Cust12345",
  "request": {
    "id": "0acb283f-366a-42cb-bc52-e982bcf97f25",
    "method": "POST",
    "path": "/Cust12345/api/v1/ChatSession/427/Reset",
    "host": "sod2.superoffice.com",
    "remote_ip": "203.0.113.9",
    "headers": {"user-agent": ["bot/1.0"], "accept": ["application/json"]},
    "query": {"x": ["1"]}
  },
  "credential": {"scheme": "bearer", "kind": "jwt", "fingerprint": "c6548c08cd277c52ee38b9bc4a544830", "tenant": "Cust12345"},
  "principal": {
    "source": "jwt",
    "subject": "bot@cust12345",
    "associate_id": 42,
    "user_type": "SystemAssociate",
    "role_name": "Integration",
    "licenses": ["Chat"],
    "function_rights": ["chat-agent", "chat-admin"],
    "user_name": "bot",
    "tenant": "Cust12345",
    "claims": {"iss": "https://sod.superoffice.com", "http://schemes.superoffice.net/identity/associateid": "42", "nested": {"a": [1, true, null]}}
  },
  "session": {
    "ChatSessionId": 427,
    "TopicId": 103,
    "User": {"AssociateId": 9, "Name": "sare", "PersonId": 31, "Rank": 1, "Tooltip": "Sarah Erikson", "Type": "InternalAssociate",
             "GroupIdx": 2, "FullName": "Sarah Erikson", "FormalName": "Erikson, Sarah", "Deleted": false, "EjUserId": 12, "UserName": "sare"},
    "Person": null,
    "Status": "InQueue",
    "WhenRequested": "2019-07-04T02:30:52.4130440+02:00",
    "WhenStarted": "2019-07-04T02:31:00Z",
    "WhenEnded": "0001-01-01T00:00:00",
    "WhenIdle": null,
    "InitialQueuePos": 4,
    "AlertLevel": 0,
    "Rank": 1,
    "Flags": "CustomerIsTyping",
    "TransferTo": null,
    "ChatbotIsActive": true,
    "Rating": 0,
    "TableRight": null,
    "FieldProperties": {"CustomerName": {"FieldRight": null, "FieldType": "System.String", "FieldLength": 255}},
    "_Links": {"Self": "https://sod2.superoffice.com/Cust12345/api/v1/ChatSession/427"}
  },
  "time": "2026-11-25T10:00:00.123456789Z"
}`

// mutate returns validInput with f applied.
func mutate(t testing.TB, f func(doc map[string]any)) any {
	t.Helper()
	doc := parseJSON(t, validInput).(map[string]any)
	f(doc)
	return doc
}

func obj(doc map[string]any, key string) map[string]any { return doc[key].(map[string]any) }

func TestInputSchemaAcceptsLaterFields(t *testing.T) {
	sch := inputSchema(t)
	docs := map[string]any{
		"every optional field": parseJSON(t, validInput),
		"backend principal, unassigned session": mutate(t, func(d map[string]any) {
			d["principal"] = map[string]any{"source": "backend", "associate_id": json.Number("9"), "user_type": "InternalAssociate", "licenses": []any{}, "function_rights": []any{}}
			s := obj(d, "session")
			s["User"] = nil
			s["Status"] = "Closed"
		}),
		"onsite basic with a backend principal": mutate(t, func(d map[string]any) {
			d["tenant"] = ""
			d["credential"] = map[string]any{"scheme": "basic", "kind": "basic", "fingerprint": "0123456789abcdef0123456789abcdef", "tenant": "", "username": "chatbot"}
			d["principal"] = map[string]any{"source": "backend", "associate_id": json.Number("3"), "user_type": "SystemAssociate", "tenant": ""}
		}),
		"credential without tenant key": mutate(t, func(d map[string]any) {
			d["credential"] = map[string]any{"scheme": "soticket", "kind": "ticket", "fingerprint": "0123456789abcdef0123456789abcdef"}
		}),
		"session with only id and status": mutate(t, func(d map[string]any) {
			d["session"] = map[string]any{"ChatSessionId": json.Number("427"), "Status": "UserLast"}
		}),
		"session with a key of a newer version": mutate(t, func(d map[string]any) {
			obj(d, "session")["SomeFutureField"] = "x"
		}),
	}
	for _, st := range []string{"Invalid", "PreChatForm", "Faq", "OfflineForm", "InQueue", "CustomerLast", "UserLast", "Finished", "Deleted", "Closed", "RequestPosted", "ClosedFromQueue"} {
		docs["status "+st] = mutate(t, func(d map[string]any) { obj(d, "session")["Status"] = st })
	}
	for name, doc := range docs {
		if err := sch.Validate(doc); err != nil {
			t.Errorf("%s: does not validate: %#v", name, err)
		}
	}
}

// TestInputSchemaAcceptsRedactedFixtureEntity puts the stand-in backend's
// ChatSessionEntity into input.session with the fields the guard must
// remove removed, and checks that each of them alone is refused.
func TestInputSchemaAcceptsRedactedFixtureEntity(t *testing.T) {
	sch := inputSchema(t)
	entity := readJSONFile(t, "../testdata/entities/reset.json").(map[string]any)
	var removed []string
	for k := range entity {
		if k == "SessionKey" || k == "FirstMessage" || k == "LastMessage" || strings.HasPrefix(k, "Customer") {
			removed = append(removed, k)
		}
	}
	slices.Sort(removed)
	if len(removed) < 9 {
		t.Fatalf("the fixture has only %v of the fields to remove", removed)
	}
	redacted := map[string]any{}
	for k, v := range entity {
		if !slices.Contains(removed, k) {
			redacted[k] = v
		}
	}
	doc := mutate(t, func(d map[string]any) { d["session"] = redacted })
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("the redacted fixture entity does not validate: %#v", err)
	}
	for _, k := range removed {
		doc := mutate(t, func(d map[string]any) {
			s := map[string]any{}
			for rk, v := range redacted {
				s[rk] = v
			}
			s[k] = entity[k]
			d["session"] = s
		})
		if err := sch.Validate(doc); err == nil {
			t.Errorf("a session carrying %s validates", k)
		}
	}
}

func TestInputSchemaRejects(t *testing.T) {
	sch := inputSchema(t)
	at := func(ptr string) string { return "at '" + ptr + "'" }
	badName := func(name string) string { return "invalid propertyName '" + name + "'" }
	headers := func(d map[string]any) map[string]any { return obj(obj(d, "request"), "headers") }
	query := func(d map[string]any) map[string]any { return obj(obj(d, "request"), "query") }
	fp := "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		doc  func(d map[string]any)
		// want is part of the validation error's text: the instance
		// location and what is wrong there. (Property-name errors are
		// matched by name: jsonschema v6.0.3 reports them at a wrong
		// instance location, an aliasing bug in its propertyNames check.)
		want string
	}{
		{"missing action", func(d map[string]any) { delete(d, "action") }, "missing property 'action'"},
		{"other action", func(d map[string]any) { d["action"] = "chat_session.pickup" }, at("/action")},
		{"unknown route", func(d map[string]any) { d["route"] = "graphql" }, at("/route")},
		{"missing session_id", func(d map[string]any) { delete(d, "session_id") }, "missing property 'session_id'"},
		{"session_id 0", func(d map[string]any) { d["session_id"] = json.Number("0") }, at("/session_id")},
		{"negative session_id", func(d map[string]any) { d["session_id"] = json.Number("-5") }, at("/session_id")},
		{"session_id past int32", func(d map[string]any) { d["session_id"] = json.Number("2147483648") }, at("/session_id")},
		{"fractional session_id", func(d map[string]any) { d["session_id"] = json.Number("427.5") }, at("/session_id")},
		{"session_id as a string", func(d map[string]any) { d["session_id"] = "427" }, at("/session_id")},
		{"tenant not normalised", func(d map[string]any) { d["tenant"] = "cust12345" }, at("/tenant")},
		{"tenant without digits", func(d map[string]any) { d["tenant"] = "Cust" }, at("/tenant")},
		{"extra top-level key", func(d map[string]any) { d["authorization"] = "Basic Ym90OnB3" }, "additional properties 'authorization' not allowed"},
		{"missing request", func(d map[string]any) { delete(d, "request") }, "missing property 'request'"},
		{"missing time", func(d map[string]any) { delete(d, "time") }, "missing property 'time'"},
		{"time not in UTC", func(d map[string]any) { d["time"] = "2026-11-25T11:00:00+01:00" }, at("/time")},
		{"time not a date", func(d map[string]any) { d["time"] = "2026-13-45T10:00:00Z" }, at("/time")},
		{"time without zone", func(d map[string]any) { d["time"] = "2026-11-25T10:00:00" }, at("/time")},

		{"header authorization present", func(d map[string]any) { headers(d)["authorization"] = []any{"Basic Ym90OnB3"} }, badName("authorization")},
		{"header cookie present", func(d map[string]any) { headers(d)["cookie"] = []any{"XSRF-TOKEN=abc"} }, badName("cookie")},
		{"header x-xsrf-token present", func(d map[string]any) { headers(d)["x-xsrf-token"] = []any{"abc"} }, badName("x-xsrf-token")},
		{"header so-apptoken present", func(d map[string]any) { headers(d)["so-apptoken"] = []any{"app-secret"} }, badName("so-apptoken")},
		{"header proxy-authorization present", func(d map[string]any) { headers(d)["proxy-authorization"] = []any{"Basic Ym90OnB3"} }, badName("proxy-authorization")},
		{"header set-cookie present", func(d map[string]any) { headers(d)["set-cookie"] = []any{"a=b"} }, badName("set-cookie")},
		{"header name not lower-case", func(d map[string]any) { headers(d)["Authorization"] = []any{"Basic Ym90OnB3"} }, badName("Authorization")},
		{"header name with a space", func(d map[string]any) { headers(d)["user agent"] = []any{"x"} }, badName("user agent")},
		{"header value not a list", func(d map[string]any) { headers(d)["user-agent"] = "bot/1.0" }, at("/request/headers/user-agent")},
		{"header with no value", func(d map[string]any) { headers(d)["user-agent"] = []any{} }, at("/request/headers/user-agent")},
		{"query ticket present", func(d map[string]any) { query(d)["ticket"] = []any{"7T:abc"} }, badName("ticket")},
		{"query access token in another case", func(d map[string]any) { query(d)["Access_Token"] = []any{"abc"} }, badName("Access_Token")},
		{"query password present", func(d map[string]any) { query(d)["password"] = []any{"pw"} }, badName("password")},
		{"query value not a list", func(d map[string]any) { query(d)["x"] = "1" }, at("/request/query/x")},
		{"request method GET", func(d map[string]any) { obj(d, "request")["method"] = "GET" }, at("/request/method")},
		{"request path relative", func(d map[string]any) { obj(d, "request")["path"] = "api/v1/ChatSession/427/Reset" }, at("/request/path")},
		{"request without id", func(d map[string]any) { obj(d, "request")["id"] = "" }, at("/request/id")},
		{"request with a body", func(d map[string]any) { obj(d, "request")["body"] = "{}" }, "additional properties 'body' not allowed"},
		{"request without headers", func(d map[string]any) { delete(obj(d, "request"), "headers") }, "missing property 'headers'"},

		{"bad fingerprint: upper-case hex", func(d map[string]any) {
			obj(d, "credential")["fingerprint"] = "C6548C08CD277C52EE38B9BC4A544830"
		}, at("/credential/fingerprint")},
		{"bad fingerprint: too short", func(d map[string]any) {
			obj(d, "credential")["fingerprint"] = "c6548c08cd277c52ee38b9bc4a54483"
		}, at("/credential/fingerprint")},
		{"bad fingerprint: full sha256", func(d map[string]any) {
			obj(d, "credential")["fingerprint"] = strings.Repeat("c6548c08", 8)
		}, at("/credential/fingerprint")},
		{"bad fingerprint: not hex", func(d map[string]any) {
			obj(d, "credential")["fingerprint"] = "8A:Cust12345.token-token-token-t"
		}, at("/credential/fingerprint")},
		{"missing fingerprint", func(d map[string]any) { delete(obj(d, "credential"), "fingerprint") }, "missing property 'fingerprint'"},
		{"credential value", func(d map[string]any) { obj(d, "credential")["token"] = "8A:Cust12345.abc" }, "additional properties 'token' not allowed"},
		{"unknown scheme", func(d map[string]any) { obj(d, "credential")["scheme"] = "digest" }, at("/credential/scheme")},
		{"scheme and kind disagree", func(d map[string]any) { obj(d, "credential")["kind"] = "basic" }, at("/credential/kind")},
		{"basic without user name", func(d map[string]any) {
			d["credential"] = map[string]any{"scheme": "basic", "kind": "basic", "fingerprint": fp, "tenant": ""}
		}, "missing property 'username'"},
		{"basic with empty user name", func(d map[string]any) {
			d["credential"] = map[string]any{"scheme": "basic", "kind": "basic", "fingerprint": fp, "tenant": "", "username": ""}
		}, at("/credential/username")},
		{"user name on a token", func(d map[string]any) { obj(d, "credential")["username"] = "bot" }, at("/credential")},
		{"online token without tenant", func(d map[string]any) {
			d["credential"] = map[string]any{"scheme": "bearer", "kind": "superoffice_token", "fingerprint": fp, "tenant": ""}
		}, at("/credential/tenant")},
		{"online token without tenant key", func(d map[string]any) {
			d["credential"] = map[string]any{"scheme": "bearer", "kind": "superoffice_token", "fingerprint": fp}
		}, "missing property 'tenant'"},
		{"ticket naming a tenant", func(d map[string]any) {
			d["credential"] = map[string]any{"scheme": "soticket", "kind": "ticket", "fingerprint": fp, "tenant": "Cust12345"}
		}, at("/credential/tenant")},

		{"missing principal", func(d map[string]any) { delete(d, "principal") }, "missing property 'principal'"},
		{"unknown principal source", func(d map[string]any) { obj(d, "principal")["source"] = "header" }, at("/principal/source")},
		{"unknown user type", func(d map[string]any) { obj(d, "principal")["user_type"] = "Bot" }, at("/principal/user_type")},
		{"associate id as a string", func(d map[string]any) { obj(d, "principal")["associate_id"] = "42" }, at("/principal/associate_id")},
		{"licenses not strings", func(d map[string]any) { obj(d, "principal")["licenses"] = []any{json.Number("1")} }, at("/principal/licenses/0")},
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
		{"session status not a name", func(d map[string]any) { obj(d, "session")["Status"] = json.Number("9") }, at("/session/Status")},
		{"session status unknown", func(d map[string]any) { obj(d, "session")["Status"] = "Active" }, at("/session/Status")},
		{"session user without id", func(d map[string]any) { obj(d, "session")["User"] = map[string]any{"Name": "sare"} }, "missing property 'AssociateId'"},
		{"session user with an unknown key", func(d map[string]any) { obj(obj(d, "session"), "User")["Password"] = "pw" }, "additional properties 'Password' not allowed"},
		{"session date not ISO", func(d map[string]any) { obj(d, "session")["WhenRequested"] = "04.07.2019 02:30" }, at("/session/WhenRequested")},
		{"session not an object", func(d map[string]any) { d["session"] = nil }, at("/session")},
	}
	for _, tt := range tests {
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

// exampleInput is a request every example policy allows: a system user
// bot of Cust12345, on a Wednesday at 11:00 in Oslo, resetting a session
// in the queue that it holds.
const exampleInput = `{
  "action": "chat_session.reset",
  "route": "rest",
  "session_id": 427,
  "tenant": "Cust12345",
  "request": {"id": "r-1", "method": "POST", "path": "/Cust12345/api/v1/ChatSession/427/Reset",
              "host": "sod2.superoffice.com", "remote_ip": "203.0.113.9", "headers": {}, "query": {}},
  "credential": {"scheme": "bearer", "kind": "superoffice_token", "fingerprint": "c6548c08cd277c52ee38b9bc4a544830", "tenant": "cust12345"},
  "principal": {"source": "backend", "subject": "integration", "associate_id": 3, "user_type": "SystemAssociate", "tenant": "Cust12345"},
  "session": {"ChatSessionId": 427, "Status": "InQueue", "User": {"AssociateId": 3}, "TransferTo": null, "ChatbotIsActive": true},
  "time": "2026-11-25T10:00:00Z"
}`

// TestExamplePoliciesLoadTogether loads the five example policies (and the
// handoff example) into one engine, as an operator combining them would,
// and asks each for its decision: the data documents must merge under
// resetguard_examples without conflict, and each policy must still see its
// own data.
func TestExamplePoliciesLoadTogether(t *testing.T) {
	ctx := context.Background()
	var dirs []string
	for _, name := range exampleNames {
		dirs = append(dirs, filepath.Join(examplesDir, name))
	}
	allowed := parseJSON(t, exampleInput).(map[string]any)
	if err := inputSchema(t).Validate(allowed); err != nil {
		t.Fatalf("the example input does not validate: %#v", err)
	}
	evalDoc := func(t *testing.T, e *policy.Engine, doc map[string]any) policy.Decision {
		t.Helper()
		v, err := ast.InterfaceToValue(doc)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.Eval(ctx, v)
		if err != nil {
			t.Fatalf("%s: %v", e.Query(), err)
		}
		return d
	}
	// deny changes the allowed input so that exactly this policy refuses,
	// with reason, because of data loaded from its own directory (where it
	// has one).
	denies := map[string]struct {
		change func(d map[string]any)
		reason string
	}{
		"bots_only": {func(d map[string]any) {
			d["principal"] = map[string]any{"source": "backend", "subject": "sare", "associate_id": json.Number("3"), "user_type": "InternalAssociate", "tenant": "Cust12345"}
		}, "not_a_bot"},
		"own_sessions":  {func(d map[string]any) { delete(d, "session") }, "session_unknown"},
		"session_state": {func(d map[string]any) { obj(d, "session")["Status"] = "ClosedFromQueue" }, "session_closed"},
		"tenant_isolation": {func(d map[string]any) {
			d["tenant"] = "Cust66666"
			obj(d, "credential")["tenant"] = "Cust66666"
			obj(d, "principal")["tenant"] = "Cust66666"
		}, "tenant_suspended"},
		"business_hours": {func(d map[string]any) { d["time"] = "2026-12-24T10:00:00Z" }, "holiday"},
	}
	for _, set := range []struct {
		name string
		dirs []string
	}{
		{"five examples", dirs},
		{"five examples and handoff", append(slices.Clone(dirs), filepath.Join(examplesDir, "handoff"))},
	} {
		t.Run(set.name, func(t *testing.T) {
			for _, name := range exampleNames {
				t.Run(name, func(t *testing.T) {
					e, err := policy.New(ctx, policy.Config{Paths: set.dirs, Query: "data.resetguard.examples." + name + ".decision", Timeout: 5 * time.Second})
					if err != nil {
						t.Fatalf("loading %v: %v", set.dirs, err)
					}
					if d := evalDoc(t, e, parseJSON(t, exampleInput).(map[string]any)); !d.Allow || len(d.Reasons) != 1 || d.Reasons[0] == "" {
						t.Errorf("allowed input: %+v", d)
					}
					doc := parseJSON(t, exampleInput).(map[string]any)
					denies[name].change(doc)
					d := evalDoc(t, e, doc)
					if d.Allow || !slices.Equal(d.Reasons, []string{denies[name].reason}) {
						t.Errorf("got %+v, want a deny with [%s]", d, denies[name].reason)
					}
					// The policy-side decision contract: allow and reasons only.
					if d.Status != 0 || len(d.Headers) != 0 {
						t.Errorf("unexpected status or headers: %+v", d)
					}
				})
			}
		})
	}
}
