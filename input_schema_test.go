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

// TestHandlerInputMatchesSchema checks, end to end, that the input the
// handler hands its policy validates against resetguard.input/v1 for every
// credential scheme and route, and that no credential, cookie, XSRF token,
// SO-AppToken or secret query parameter reaches it.
func TestHandlerInputMatchesSchema(t *testing.T) {
	sch := compileInputSchema(t)
	h, _ := provisioned(t, &Handler{Policy: PolicyConfig{Paths: []string{"testdata/echo"}, Query: "data.resetguard.echo.decision"}})

	// Every secret below contains "secret", so that one search finds any
	// of them, whole or in part.
	const (
		password   = "pw-secret-5e1d"
		ticket     = "7T:ticket-secret-4b2a"
		token      = "8A:Cust12345.x"
		token2     = "8A:cust12345.token-secret-99"
		xsrf       = "xsrf-secret-3d3d"
		cookie     = "sid=cookie-secret-77aa"
		appToken   = "apptoken-secret-91cc"
		queryToken = "secret"
	)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("chatbot:"+password))
	secrets := []string{"secret", password, ticket, token, token2, xsrf, "cookie-secret", appToken, queryToken,
		strings.TrimPrefix(basic, "Basic "), "XSRF-TOKEN", "Authorization", "authorization"}

	// withSecrets adds the headers that must never reach the policy.
	withSecrets := func(r *http.Request) {
		r.Header.Add("Cookie", cookie)
		r.Header.Set("SO-AppToken", appToken)
		r.Header.Set("X-XSRF-TOKEN", xsrf)
		r.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("proxy:"+password)))
	}
	// withInputHeaders adds the allow-listed headers the input does carry.
	withInputHeaders := func(r *http.Request) {
		r.Header.Set("User-Agent", "handoff-bot/1.0")
		r.Header.Add("Accept", "application/json")
		r.Header.Add("Accept", "text/json")
		r.Header.Set("X-Request-Id", "client-req-7")
		r.Header.Set("X-Forwarded-For", "198.51.100.7")
		r.Header.Set("X-Not-Allow-Listed", "dropped")
	}

	tests := []struct {
		name    string
		request func() *http.Request
		want    map[string]any // JSON-pointer-like dotted paths → expected values
	}{
		{"basic onsite, REST", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/SuperOffice/api/v1/ChatSession/427/Reset?ticket="+queryToken+"&x=1", nil)
			r.Header.Set("Authorization", basic)
			withSecrets(r)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("427"), "tenant": "",
			"credential.scheme": "basic", "credential.kind": "basic", "credential.username": "chatbot", "credential.tenant": "",
		}},
		{"soticket, REST, scheme word upper-case", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/2147483647/Reset?ticket="+queryToken+"&x=1", nil)
			r.Header.Set("Authorization", "SOTICKET "+ticket)
			withSecrets(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("2147483647"), "tenant": "",
			"credential.scheme": "soticket", "credential.kind": "ticket",
		}},
		{"bearer Online token, REST", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/Cust12345/api/v1/ChatSession/427/Reset?ticket="+queryToken+"&x=1", nil)
			r.Header.Set("Authorization", "Bearer "+token)
			withSecrets(r)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("427"), "tenant": "Cust12345",
			"credential.scheme": "bearer", "credential.kind": "superoffice_token", "credential.tenant": "Cust12345",
		}},
		{"bearer Online token, lower-case tenant in path and token", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/cust12345/API/v1/chatsession/0427/reset/?ticket="+queryToken+"&x=1", nil)
			r.Header.Set("Authorization", "bearer "+token2)
			withSecrets(r)
			return r
		}, map[string]any{
			"route": "rest", "session_id": json.Number("427"), "tenant": "Cust12345",
			"credential.kind": "superoffice_token", "credential.tenant": "Cust12345",
		}},
		{"xsrf header and cookie, REST", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/SuperOffice/api/v1/ChatSession/427/Reset?ticket="+queryToken+"&x=1", nil)
			r.Header.Set("X-XSRF-TOKEN", xsrf)
			r.Header.Add("Cookie", "XSRF-TOKEN="+xsrf+"; "+cookie)
			r.Header.Set("SO-AppToken", appToken)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "rest", "tenant": "", "credential.scheme": "xsrf", "credential.kind": "xsrf",
		}},
		{"agents route, JSON body", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/Cust12345/api/v1/Agents/Chat/ResetChatSession?ticket="+queryToken+"&x=1&$select=Status",
				strings.NewReader(`{"ChatSessionId": 831}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+token)
			withSecrets(r)
			withInputHeaders(r)
			return r
		}, map[string]any{
			"route": "agents", "session_id": json.Number("831"), "tenant": "Cust12345",
			"request.headers.content-type": []any{"application/json"},
		}},
		{"agents route, XML body", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/SuperOffice/api/v1/Agents/Chat/ResetChatSession?ticket="+queryToken+"&x=1",
				strings.NewReader(`<ResetChatSession><ChatSessionId>832</ChatSessionId></ResetChatSession>`))
			r.Header.Set("Content-Type", "application/xml")
			r.Header.Set("Authorization", "SoTicket "+ticket)
			withSecrets(r)
			return r
		}, map[string]any{"route": "agents", "session_id": json.Number("832")}},
		{"agents route, form body", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/SuperOffice/api/v1/Agents/Chat/ResetChatSession?ticket="+queryToken+"&x=1",
				strings.NewReader(`ChatSessionId=833`))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set("Authorization", basic)
			withSecrets(r)
			return r
		}, map[string]any{"route": "agents", "session_id": json.Number("833"), "credential.username": "chatbot"}},
		{"soap route", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/Cust12345/Remote/Services88/Chat.svc?ticket="+queryToken+"&x=1",
				strings.NewReader(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><ResetChatSession xmlns="http://www.superoffice.net/ws/crm/NetServer/Services88"><ChatSessionId>834</ChatSessionId></ResetChatSession></s:Body></s:Envelope>`))
			r.Header.Set("Content-Type", "text/xml; charset=utf-8")
			r.Header.Set("SOAPAction", `"http://www.superoffice.net/ws/crm/NetServer/Services88/ResetChatSession"`)
			r.Header.Set("Authorization", "SoTicket "+ticket)
			withSecrets(r)
			return r
		}, map[string]any{"route": "soap", "session_id": json.Number("834"), "tenant": "Cust12345"}},
		{"secret query names in other cases", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset?TICKET="+queryToken+"&Access_Token="+queryToken+
				"&password="+queryToken+"&so-apptoken="+queryToken+"&x=1", nil)
			r.Header.Set("Authorization", "SoTicket "+ticket)
			return r
		}, map[string]any{"route": "rest"}},
	}
	for _, tt := range tests {
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
			for _, s := range secrets {
				if strings.Contains(string(body), s) {
					t.Errorf("the response (echoed input) contains the secret %q: %s", s, body)
				}
			}
			// The query keeps its other parameters, with all their values.
			if q, _ := field(doc, "request", "query").(map[string]any); q["x"] == nil {
				t.Errorf("request.query lost x: %s", raw)
			}
			if hs, _ := field(doc, "request", "headers").(map[string]any); hs != nil {
				for name := range hs {
					if name != strings.ToLower(name) {
						t.Errorf("header name %q is not lower-case", name)
					}
				}
				if hs["x-not-allow-listed"] != nil {
					t.Errorf("a header outside input_headers reached the input: %s", raw)
				}
			}
		})
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
