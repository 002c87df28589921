package policy_test

import (
	"encoding/json"
	"os"
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

// baseInput is an Online bearer-token reset as the handler builds it.
func baseInput() policy.Input {
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

// inputValueCases change baseInput into the other shapes the handler
// builds.
var inputValueCases = []struct {
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
		in.Time = time.Date(2026, 3, 29, 3, 30, 0, 123456789, time.FixedZone("CET", 3600))
	}},
	{"time with a monotonic reading", func(in *policy.Input) { in.Time = time.Now() }},
	{"principal from the backend", func(in *policy.Input) { in.Principal.Source = "backend" }},
	{"principal from a jwt", func(in *policy.Input) {
		in.Principal.Source = "jwt"
		in.Credential.Kind = "jwt"
	}},
}

// TestInputSchemaAcceptsInputValues validates what Input.Value produces,
// as the policy sees it, for the shapes the handler builds.
func TestInputSchemaAcceptsInputValues(t *testing.T) {
	sch := inputSchema(t)
	for _, tt := range inputValueCases {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput()
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
