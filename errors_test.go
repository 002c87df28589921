package resetguard

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestPrefersXML(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"application/xml", true},
		{"text/xml", true},
		{"text/xml; charset=utf-8", true},
		{"application/json, application/xml", false},               // a tie is JSON
		{"application/json;q=0.5, application/xml", true},          // XML ranked higher
		{"application/xml;q=0.4, text/json;q=0.9", false},          // JSON ranked higher
		{"application/xml;q=0, */*", false},                        // XML refused
		{"application/xml;q=bogus, application/json;q=0.1", false}, // a broken q is ignored
		{"text/html, application/xml;q=0.9", true},
	}
	for _, tt := range tests {
		if got := prefersXML(tt.accept); got != tt.want {
			t.Errorf("prefersXML(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestErrorType(t *testing.T) {
	tests := map[int]string{
		400: "BadRequestException",
		401: "AuthenticationException",
		403: "AccessDeniedException",
		423: "LockedException",
		503: "ServiceUnavailableException",
		418: "ImATeapotException",
		429: "TooManyRequestsException",
		599: "Http599Exception",
	}
	for status, want := range tests {
		if got := errorType(status); got != want {
			t.Errorf("errorType(%d) = %q, want %q", status, got, want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	tests := map[string]bool{
		"":                          false,
		"abc-123":                   true,
		"01HF:trace.span_1":         true,
		strings.Repeat("a", 128):    true,
		strings.Repeat("a", 129):    false,
		"has space":                 false,
		"semi;colon":                false,
		"line\nbreak":               false,
		"ünïcode":                   false,
		"<script>alert(1)</script>": false,
	}
	for id, want := range tests {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}

// guardedRequest runs one reset through h as Caddy's server would set it
// up (replacer with {http.request.uuid}) and returns the response, the
// handler's error and the replacer.
func guardedRequest(t *testing.T, h *Handler, user string, header map[string]string) (*httptest.ResponseRecorder, error, *caddy.Replacer) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	r.SetBasicAuth(user, "pw")
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, w, nil)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "backend-id") // the guard's id wins
		_, _ = w.Write([]byte(`{"ChatSessionId": 427}`))
		return nil
	})
	err := h.ServeHTTP(w, r, next)
	return w, err, repl
}

func testPolicy() PolicyConfig {
	return PolicyConfig{Paths: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision"}
}

// refusalBodyCase is a client's headers on a denied reset, and the body
// and request id they must get.
type refusalBodyCase struct {
	name       string
	header     map[string]string
	wantXML    bool
	wantClient bool // the client's X-Request-Id is kept
}

// TestRefusalBodyFormat: a refusal the guard writes is the SuperOffice
// WebAPI error shape with the policy's reasons and the request id, in
// JSON or in XML after Accept.
func TestRefusalBodyFormat(t *testing.T) {
	runRefusalBodyCases(t, []refusalBodyCase{
		{name: "json, generated id"},
		{name: "xml when preferred", header: map[string]string{"Accept": "application/xml, application/json;q=0.8"}, wantXML: true},
		{name: "text/xml", header: map[string]string{"Accept": "text/xml"}, wantXML: true},
	})
}

// TestRefusalBodyRequestID: the refusal's request id is the client's
// when well-formed, Caddy's UUID otherwise, and it is the audit record's
// http.request.id; event.id is the record's own.
func TestRefusalBodyRequestID(t *testing.T) {
	runRefusalBodyCases(t, []refusalBodyCase{
		{name: "json, client id kept", header: map[string]string{"X-Request-Id": "client-7:abc"}, wantClient: true},
		{name: "malformed client id replaced", header: map[string]string{"X-Request-Id": "bad id\t<x>"}},
	})
}

// runRefusalBodyCases sends a reset the test policy denies (user
// mallory) with each case's headers and checks the whole refusal: status,
// body, headers and record.
func runRefusalBodyCases(t *testing.T, cases []refusalBodyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy()})
			w, err, repl := guardedRequest(t, h, "mallory", tt.header)
			if err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", w.Code, w.Body)
			}
			uuid, _ := repl.GetString("http.request.uuid")
			wantID := uuid
			if tt.wantClient {
				wantID = tt.header["X-Request-Id"]
			}
			if wantID == "" {
				t.Fatal("no request uuid in the replacer")
			}
			b := decodeRefusalBody(t, w, tt.wantXML)
			want := errorBody{XMLName: b.XMLName, Error: true, ErrorType: "AccessDeniedException",
				ErrorMessage: "the access policy does not allow this hand-off", ErrorSource: "ResetGuard",
				Status: 403, Reasons: []string{"mallory_refused"}, RequestID: wantID}
			if b.Error != want.Error || b.ErrorType != want.ErrorType || b.ErrorMessage != want.ErrorMessage ||
				b.ErrorSource != want.ErrorSource || b.Status != want.Status || b.RequestID != want.RequestID ||
				strings.Join(b.Reasons, ",") != "mallory_refused" {
				t.Errorf("body %+v\nwant %+v", b, want)
			}
			if got := w.Header().Get("X-Request-Id"); got != wantID {
				t.Errorf("X-Request-Id %q, want %q", got, wantID)
			}
			if got := w.Header().Get("X-Denied-By"); got != "policy" {
				t.Errorf("policy header X-Denied-By = %q", got)
			}
			rec, ev := soleRecord(t, logs)
			if req, _ := rec["http"].(map[string]any)["request"].(map[string]any); req["id"] != wantID {
				t.Errorf("audit http.request.id %v, want %s", req["id"], wantID)
			}
			if id, _ := ev["id"].(string); len(id) != 36 || id == wantID {
				t.Errorf("audit event.id %v: want a UUID of the record's own, not the request id %s", ev["id"], wantID)
			}
		})
	}
}

// decodeRefusalBody checks the refusal's media type and decodes it: XML
// with the ResetGuardError root, or JSON with exactly the seven fields of
// the error shape.
func decodeRefusalBody(t *testing.T, w *httptest.ResponseRecorder, wantXML bool) errorBody {
	t.Helper()
	var b errorBody
	ct := w.Header().Get("Content-Type")
	if wantXML {
		if !strings.HasPrefix(ct, "application/xml") || !strings.HasPrefix(w.Body.String(), "<?xml") {
			t.Fatalf("Content-Type %q body %s, want XML", ct, w.Body)
		}
		if err := xml.Unmarshal(w.Body.Bytes(), &b); err != nil {
			t.Fatalf("XML body: %v: %s", err, w.Body)
		}
		if b.XMLName.Local != "ResetGuardError" {
			t.Errorf("XML root %q", b.XMLName.Local)
		}
		return b
	}
	if !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatalf("JSON body: %v: %s", err, w.Body)
	}
	for _, k := range []string{"Error", "ErrorType", "ErrorMessage", "ErrorSource", "Status", "Reasons", "RequestId"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("body lacks %s: %s", k, w.Body)
		}
	}
	if len(raw) != 7 {
		t.Errorf("body has %d fields, want 7: %s", len(raw), w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRefusalForHandleErrors: with errors handle_errors the guard writes
// nothing, returns a HandlerError with the refusal's status, has written
// the record already, and leaves the body's fields in placeholders.
func TestRefusalForHandleErrors(t *testing.T) {
	h, logs := provisioned(t, &Handler{Policy: testPolicy(), Errors: ErrorsHandleErrors})
	w, err, repl := guardedRequest(t, h, "mallory", nil)
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		t.Fatalf("ServeHTTP returned %v, want a caddyhttp.HandlerError", err)
	}
	if he.StatusCode != http.StatusForbidden {
		t.Errorf("HandlerError status %d, want 403", he.StatusCode)
	}
	if w.Body.Len() != 0 || w.Code != http.StatusOK || w.Result().Header.Get("Content-Type") != "" {
		t.Errorf("the guard wrote a response (%d %q); the error routes must", w.Code, w.Body)
	}
	if logs.Len() != 1 {
		t.Fatalf("%d audit records before the error routes run, want 1", logs.Len())
	}
	if !strings.Contains(he.Error(), "mallory_refused") || !strings.Contains(he.Error(), "AccessDeniedException") {
		t.Errorf("error text %q lacks the reason and type", he.Error())
	}
	var b errorBody
	body, _ := repl.GetString("http.reset_guard.error_body")
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Status != 403 || !b.Error || b.ErrorSource != "ResetGuard" {
		t.Errorf("{http.reset_guard.error_body} = %q (%v)", body, err)
	}
	if v, _ := repl.GetString("http.reset_guard.reasons"); v != "mallory_refused" {
		t.Errorf("{http.reset_guard.reasons} = %q", v)
	}
	if v, _ := repl.GetString("http.reset_guard.error_type"); v != "AccessDeniedException" {
		t.Errorf("{http.reset_guard.error_type} = %q", v)
	}
	if w.Header().Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id for the error routes to keep")
	}
}

// TestPlaceholders: the outcome is published on the replacer for later
// handlers and logs, and no placeholder carries the credential.
func TestPlaceholders(t *testing.T) {
	tests := []struct {
		name string
		h    Handler
		user string
		want map[string]string
	}{
		{
			name: "allowed", h: Handler{Policy: testPolicy()}, user: "bot",
			want: map[string]string{"decision": "allow", "session_id": "427", "principal": "bot", "reasons": "ok", "outcome": "success"},
		},
		{
			name: "denied", h: Handler{Policy: testPolicy()}, user: "mallory",
			want: map[string]string{"decision": "deny", "session_id": "427", "principal": "mallory", "reasons": "mallory_refused", "outcome": "failure"},
		},
		{
			name: "dry run", h: Handler{Policy: func() PolicyConfig { p := testPolicy(); p.DryRun = true; return p }()}, user: "mallory",
			want: map[string]string{"decision": "dry_run", "principal": "mallory", "reasons": "mallory_refused", "outcome": "success"},
		},
		{
			name: "refused before the policy", h: Handler{Policy: testPolicy(), Schemes: []string{"bearer"}}, user: "bot",
			want: map[string]string{"decision": "refused", "session_id": "427", "principal": "", "outcome": "failure"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := provisioned(t, &tt.h)
			w, err, repl := guardedRequest(t, h, tt.user, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if got, _ := repl.GetString("http.reset_guard." + k); got != want {
					t.Errorf("{http.reset_guard.%s} = %q, want %q", k, got, want)
				}
			}
			// The request id is the header's; the event id is the id of
			// the record the Caddy logger got (the outcome or refusal).
			reqID, _ := repl.GetString("http.reset_guard.request_id")
			eventID, _ := repl.GetString("http.reset_guard.event_id")
			if reqID == "" || w.Header().Get("X-Request-Id") != reqID {
				t.Errorf("request id %q, header %q: want one non-empty id", reqID, w.Header().Get("X-Request-Id"))
			}
			if _, ev := soleRecord(t, logs); eventID == "" || eventID == reqID || ev["id"] != eventID {
				t.Errorf("{http.reset_guard.event_id} %q, record's event.id %v, request id %q: want the record's own id", eventID, ev["id"], reqID)
			}
			if w.Code == http.StatusOK && w.Header().Values("X-Request-Id")[0] != reqID {
				t.Errorf("forwarded response X-Request-Id %q, want the guard's", w.Header().Values("X-Request-Id"))
			}
			for _, k := range []string{"decision", "session_id", "principal", "reasons", "event_id"} {
				if v, _ := repl.GetString("http.reset_guard." + k); strings.Contains(v, "pw") || strings.Contains(v, "Basic") {
					t.Errorf("{http.reset_guard.%s} = %q carries the credential", k, v)
				}
			}
		})
	}
}

// TestUpstreamFailureRefusal: an allowed reset whose backend fails is
// answered in the same error shape, and the placeholders carry the
// reason the client is told (upstream_error), not the policy's.
func TestUpstreamFailureRefusal(t *testing.T) {
	h, logs := provisioned(t, &Handler{Policy: testPolicy()})
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	r.SetBasicAuth("bot", "pw")
	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, w, nil)
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return dialRefused()
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	var b errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	if w.Code != 502 || b.ErrorType != "BadGatewayException" || strings.Join(b.Reasons, ",") != "upstream_error" ||
		strings.Contains(w.Body.String(), "connection refused") {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
	want := map[string]string{"decision": "allow", "reasons": "upstream_error", "outcome": "failure"}
	for k, v := range want {
		if got, _ := repl.GetString("http.reset_guard." + k); got != v {
			t.Errorf("{http.reset_guard.%s} = %q, want %q", k, got, v)
		}
	}
	if logs.Len() != 1 {
		t.Errorf("%d audit records, want 1", logs.Len())
	}
}
