package resetguard

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const (
	inputSchemaPath = "testdata/schema/resetguard.input.v1.schema.json"
	inputSchemaURL  = "https://resetguard.dev/schema/resetguard.input/v1"
)

func compileInputSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(inputSchemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", inputSchemaPath, err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(inputSchemaURL, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(inputSchemaURL)
	if err != nil {
		t.Fatalf("compiling %s: %v", inputSchemaPath, err)
	}
	return sch
}

// echoedInput sends r through a handler whose policy (testdata/echo)
// refuses every reset with the input document as its only reason, and
// returns that document as the handler built it, raw and decoded. The
// request is prepared as Caddy's server would (replacer, request id), and
// the next handler must never run.
func echoedInput(t *testing.T, h *Handler, r *http.Request) (raw string, body []byte, doc map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("the echo policy refuses every reset: the next handler must not be called")
		return nil
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	body = w.Body.Bytes()
	if w.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403 from the echo policy; body %s", w.Code, body)
	}
	var eb struct {
		Reasons []string `json:"Reasons"`
	}
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	if len(eb.Reasons) != 1 {
		t.Fatalf("reasons %q, want the echoed input alone", eb.Reasons)
	}
	raw = eb.Reasons[0]
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("reason is not JSON: %v\n%s", err, raw)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("echoed input is a %T: %s", v, raw)
	}
	return raw, body, doc
}

// field follows a path of object keys through doc.
func field(doc map[string]any, path ...string) any {
	var v any = doc
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// Credentials and secrets of the input schema tests. Most contain
// "secret", so that one search finds any of them, whole or in part;
// inputSecrets lists the others by value.
const (
	inputPassword    = "pw-secret-5e1d"
	inputTicket      = "7T:ticket-secret-4b2a"
	inputToken       = "8A:Cust12345.x"
	inputToken2      = "8A:cust12345.token-secret-99"
	inputXSRF        = "xsrf-secret-3d3d"
	inputCookie      = "sid=cookie-secret-77aa"
	inputAppToken    = "apptoken-secret-91cc"
	inputQuerySecret = "secret"
	// inputQuery: a secret query parameter beside one the input keeps.
	inputQuery = "?ticket=" + inputQuerySecret + "&x=1"
)

var inputBasic = "Basic " + base64.StdEncoding.EncodeToString([]byte("chatbot:"+inputPassword))

// inputSecrets must never appear in the policy input.
var inputSecrets = []string{"secret", inputPassword, inputTicket, inputToken, inputToken2, inputXSRF, "cookie-secret",
	inputAppToken, inputQuerySecret, strings.TrimPrefix(inputBasic, "Basic "), "XSRF-TOKEN", "Authorization", "authorization"}

// withSecretHeaders adds the headers that must never reach the policy.
func withSecretHeaders(r *http.Request) {
	r.Header.Add("Cookie", inputCookie)
	r.Header.Set("SO-AppToken", inputAppToken)
	r.Header.Set("X-XSRF-TOKEN", inputXSRF)
	r.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("proxy:"+inputPassword)))
}

// withInputHeaders adds the allow-listed headers the input does carry,
// and one it does not.
func withInputHeaders(r *http.Request) {
	r.Header.Set("User-Agent", "handoff-bot/1.0")
	r.Header.Add("Accept", "application/json")
	r.Header.Add("Accept", "text/json")
	r.Header.Set("X-Request-Id", "client-req-7")
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	r.Header.Set("X-Not-Allow-Listed", "dropped")
}

// inputCase is a reset request and fields its policy input must hold.
type inputCase struct {
	name    string
	request func() *http.Request
	want    map[string]any // dotted paths → expected values
}

// TestHandlerInputCredentials checks, end to end, that the input the
// handler hands its policy validates against resetguard.input/v1 for every
// credential scheme, and that no credential, cookie, XSRF token,
// SO-AppToken or secret query parameter reaches it.
func TestHandlerInputCredentials(t *testing.T) {
	runInputCases(t, []inputCase{
		{"basic onsite, REST", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/SuperOffice/api/v1/ChatSession/427/Reset"+inputQuery, nil)
			r.Header.Set("Authorization", inputBasic)
			withSecretHeaders(r)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("427"), "tenant": "",
			"credential.scheme": "basic", "credential.kind": "basic", "credential.username": "chatbot", "credential.tenant": "",
		}},
		{"soticket, REST, scheme word upper-case", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/2147483647/Reset"+inputQuery, nil)
			r.Header.Set("Authorization", "SOTICKET "+inputTicket)
			withSecretHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("2147483647"), "tenant": "",
			"credential.scheme": "soticket", "credential.kind": "ticket",
		}},
		{"bearer Online token, REST", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/Cust12345/api/v1/ChatSession/427/Reset"+inputQuery, nil)
			r.Header.Set("Authorization", "Bearer "+inputToken)
			withSecretHeaders(r)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("427"), "tenant": "Cust12345",
			"credential.scheme": "bearer", "credential.kind": "superoffice_token", "credential.tenant": "Cust12345",
		}},
		{"bearer Online token, lower-case tenant in path and token", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/cust12345/API/v1/chatsession/0427/reset/"+inputQuery, nil)
			r.Header.Set("Authorization", "bearer "+inputToken2)
			withSecretHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("427"), "tenant": "Cust12345",
			"credential.kind": "superoffice_token", "credential.tenant": "Cust12345",
		}},
		{"xsrf header and cookie, REST", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/SuperOffice/api/v1/ChatSession/427/Reset"+inputQuery, nil)
			r.Header.Set("X-XSRF-TOKEN", inputXSRF)
			r.Header.Add("Cookie", "XSRF-TOKEN="+inputXSRF+"; "+inputCookie)
			r.Header.Set("SO-AppToken", inputAppToken)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "tenant": "", "credential.scheme": "xsrf", "credential.kind": "xsrf",
		}},
	})
}

// TestHandlerInputBodyRoutes: the same for the routes whose session id
// is in the body (Agents as JSON, XML or form; SOAP).
func TestHandlerInputBodyRoutes(t *testing.T) {
	post := func(path, contentType, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		return r
	}
	runInputCases(t, []inputCase{
		{"agents route, JSON body", func() *http.Request {
			r := post("/Cust12345/api/v1/Agents/Chat/ResetChatSession"+inputQuery+"&$select=Status", "application/json", `{"ChatSessionId": 831}`)
			r.Header.Set("Authorization", "Bearer "+inputToken)
			withSecretHeaders(r)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "agents", "session_id": json.Number("831"), "tenant": "Cust12345",
			"request.headers.content-type": []any{"application/json"},
		}},
		{"agents route, XML body", func() *http.Request {
			r := post("/SuperOffice/api/v1/Agents/Chat/ResetChatSession"+inputQuery, "application/xml",
				`<ResetChatSession><ChatSessionId>832</ChatSessionId></ResetChatSession>`)
			r.Header.Set("Authorization", "SoTicket "+inputTicket)
			withSecretHeaders(r)
			return r
		}, map[string]any{"route": "agents", "session_id": json.Number("832")}},
		{"agents route, form body", func() *http.Request {
			r := post("/SuperOffice/api/v1/Agents/Chat/ResetChatSession"+inputQuery, "application/x-www-form-urlencoded", `ChatSessionId=833`)
			r.Header.Set("Authorization", inputBasic)
			withSecretHeaders(r)
			return r
		}, map[string]any{"route": "agents", "session_id": json.Number("833"), "credential.username": "chatbot"}},
		{"soap route", func() *http.Request {
			r := post("/Cust12345/Remote/Services88/Chat.svc"+inputQuery, "text/xml; charset=utf-8",
				`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ResetChatSession xmlns="http://www.superoffice.net/ws/crm/NetServer/Services88"><ChatSessionId>834</ChatSessionId></ResetChatSession></s:Body></s:Envelope>`)
			r.Header.Set("SOAPAction", `"http://www.superoffice.net/ws/crm/NetServer/Services88/ResetChatSession"`)
			r.Header.Set("Authorization", "SoTicket "+inputTicket)
			withSecretHeaders(r)
			return r
		}, map[string]any{"route": "soap", "session_id": json.Number("834"), "tenant": "Cust12345"}},
	})
}

// TestHandlerInputSecretQueryNames: credential-like query parameter
// names in any case are dropped, the others kept, in a schema-valid input.
func TestHandlerInputSecretQueryNames(t *testing.T) {
	runInputCases(t, []inputCase{
		{"secret query names in other cases", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset?TICKET="+inputQuerySecret+"&Access_Token="+inputQuerySecret+
				"&password="+inputQuerySecret+"&so-apptoken="+inputQuerySecret+"&x=1", nil)
			r.Header.Set("Authorization", "SoTicket "+inputTicket)
			return r
		}, map[string]any{"route": "rest"}},
	})
}

// runInputCases echoes each case's input through a handler with the echo
// policy and checks it against the schema, the case's fields, the
// secrets and the header and query rules.
func runInputCases(t *testing.T, cases []inputCase) {
	t.Helper()
	sch := compileInputSchema(t)
	h, _ := provisioned(t, &Handler{Policy: PolicyConfig{Paths: []string{"testdata/echo"}, Query: "data.resetguard.echo.decision"}})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			raw, body, doc := echoedInput(t, h, tt.request())
			if err := sch.Validate(doc); err != nil {
				t.Errorf("the handler's input does not validate against %s: %#v\ninput: %s", inputSchemaPath, err, raw)
			}
			for path, want := range tt.want {
				got := field(doc, strings.Split(path, ".")...)
				gb, _ := json.Marshal(got)
				wb, _ := json.Marshal(want)
				if string(gb) != string(wb) {
					t.Errorf("%s = %s, want %s", path, gb, wb)
				}
			}
			for _, s := range inputSecrets {
				if strings.Contains(string(body), s) {
					t.Errorf("the response (echoed input) contains the secret %q: %s", s, body)
				}
			}
			checkInputQueryAndHeaders(t, doc, raw)
		})
	}
}

// checkInputQueryAndHeaders: the query keeps its other parameters, with
// all their values; header names are lower-case and allow-listed.
func checkInputQueryAndHeaders(t *testing.T, doc map[string]any, raw string) {
	t.Helper()
	if q, _ := field(doc, "request", "query").(map[string]any); q["x"] == nil {
		t.Errorf("request.query lost x: %s", raw)
	}
	hs, _ := field(doc, "request", "headers").(map[string]any)
	if hs == nil {
		return
	}
	for name := range hs {
		if name != strings.ToLower(name) {
			t.Errorf("header name %q is not lower-case", name)
		}
	}
	if hs["x-not-allow-listed"] != nil {
		t.Errorf("a header outside input_headers reached the input: %s", raw)
	}
}

// TestHandlerInputDropsCredentialQueryParams: credential-like query
// parameters never reach the policy input.
func TestHandlerInputDropsCredentialQueryParams(t *testing.T) {
	h, _ := provisioned(t, &Handler{Policy: PolicyConfig{Paths: []string{"testdata/echo"}, Query: "data.resetguard.echo.decision"}})
	names := []string{"so_apptoken", "refresh_token", "client_secret", "authorization", "jwt", "session_key", "x-xsrf-token",
		"access_token", "Ticket", "API-KEY", "password", "SessionKey"}
	var leaked []string
	for _, name := range names {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset?"+name+"=leak-secret", nil)
		r.Header.Set("Authorization", "SoTicket 7T:abc")
		raw, _, _ := echoedInput(t, h, r)
		if strings.Contains(raw, "leak-secret") {
			leaked = append(leaked, name)
		}
	}
	if len(leaked) > 0 {
		t.Fatalf("query parameters %q reach the policy input with their values", leaked)
	}
}
