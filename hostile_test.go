package resetguard

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/classify/soaptest"
)

// errReader fails every read, as a body read interrupted by a deadline
// or a reset connection does.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// TestHostileRequests drives the handler with hostile bodies and SOAP
// calls: each gets its precise status and exactly one audit record, and
// nothing refused reaches the next handler; what passes through reaches
// it with the body intact.
func TestHostileRequests(t *testing.T) {
	entity, err := os.ReadFile("testdata/entities/reset.json")
	if err != nil {
		t.Fatal(err)
	}
	deepJSON := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	cases := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		body        io.Reader
		length      int64 // -1: unknown (chunked)
		user        string
		wantStatus  int
		wantReason  string // "" for a forward or a pass-through
		wantForward bool
		wantAudit   bool
	}{
		{name: "agents deeply nested JSON", path: "/api/v1/Agents/Chat/ResetChatSession", header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"x":` + deepJSON[:60000] + `,"ChatSessionId":1}`), wantStatus: 400, wantReason: "bad_session_id", wantAudit: true},
		{name: "agents id in the query as well", path: "/api/v1/Agents/Chat/ResetChatSession?chatsessionid=666", header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 400, wantReason: "bad_session_id", wantAudit: true},
		{name: "agents prefixed id in the query, encoded", path: "/api/v1/Agents/Chat/ResetChatSession?request.Chat%53essionId=666&$select=Status", header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 400, wantReason: "bad_session_id", wantAudit: true},
		{name: "agents other query parameters", path: "/api/v1/Agents/Chat/ResetChatSession?$select=Status,ChatSessionId&x=1", header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 200, wantForward: true, wantAudit: true},
		{name: "agents body past the bound", path: "/api/v1/Agents/Chat/ResetChatSession", header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"ChatSessionId":1,"pad":"` + strings.Repeat("x", 70000) + `"}`), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: true},
		{name: "agents chunked body past the bound", path: "/api/v1/Agents/Chat/ResetChatSession", length: -1, header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"ChatSessionId":1,"pad":"` + strings.Repeat("x", 70000) + `"}`), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: true},
		{name: "agents chunked body within the bound", path: "/api/v1/Agents/Chat/ResetChatSession", length: -1, header: map[string]string{"Content-Type": "application/json"},
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 200, wantForward: true, wantAudit: true},
		{name: "agents XML with a DTD", path: "/api/v1/Agents/Chat/ResetChatSession", header: map[string]string{"Content-Type": "application/xml"},
			body: strings.NewReader(`<!DOCTYPE x [<!ENTITY a "427">]><ResetChatSession><ChatSessionId>&a;</ChatSessionId></ResetChatSession>`), wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: true},
		{name: "agents body read times out", path: "/api/v1/Agents/Chat/ResetChatSession", header: map[string]string{"Content-Type": "application/json"},
			body: errReader{os.ErrDeadlineExceeded}, length: 20, wantStatus: 408, wantReason: "request_body_timeout", wantAudit: true},
		{name: "agents body read fails", path: "/api/v1/Agents/Chat/ResetChatSession", header: map[string]string{"Content-Type": "application/json"},
			body: errReader{io.ErrUnexpectedEOF}, length: 20, wantStatus: 400, wantReason: "request_body_unreadable", wantAudit: true},
		{name: "soap reset allowed", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.ResetAction, "Content-Type": soaptest.ContentType11},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 200, wantForward: true, wantAudit: true},
		{name: "soap 1.2 reset denied", path: "/Cust1/Remote/Services88/Chat.svc", user: "mallory", header: map[string]string{"Content-Type": soaptest.ContentType12},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 403, wantReason: "mallory_refused", wantAudit: true},
		{name: "soap reset without credentials", path: "/Remote/Services88/Chat.svc", user: "-", header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 401, wantReason: "missing_credentials", wantAudit: true},
		{name: "soap reset by GET", method: http.MethodGet, path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 405, wantReason: "method_not_allowed", wantAudit: true},
		{name: "soap ticket in the envelope", path: "/Remote/Services88/Chat.svc", user: "-", header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body: strings.NewReader(soaptest.Envelope(`<Credentials xmlns="`+soaptest.NS+`"><Ticket>7T:dGlja2V0</Ticket></Credentials>`, soaptest.Reset("427"))), wantStatus: 200, wantForward: true, wantAudit: true},
		// The backend authenticates the envelope, the guard would have
		// decided on the header: refused.
		{name: "soap ticket in the envelope and an Authorization header", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body: strings.NewReader(soaptest.Envelope(`<Credentials xmlns="`+soaptest.NS+`"><Ticket>7T:dGlja2V0</Ticket></Credentials>`, soaptest.Reset("427"))), wantStatus: 401, wantReason: "duplicate_authorization", wantAudit: true},
		{name: "soap user and password in the envelope", path: "/Remote/Services88/Chat.svc", user: "-", header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body: strings.NewReader(soaptest.Envelope(`<Credentials xmlns="`+soaptest.NS+`"><Username>u</Username><Password>p</Password></Credentials>`, soaptest.Reset("427"))), wantStatus: 401, wantReason: "malformed_authorization", wantAudit: true},
		{name: "soap other operation passes with its body", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Get("427"))), wantStatus: 200, wantForward: true},
		{name: "soap chunked other operation passes", path: "/Remote/Services88/Chat.svc", length: -1, header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Get("427"))), wantStatus: 200, wantForward: true},
		{name: "soap WSDL passes", method: http.MethodGet, path: "/Remote/Services88/Chat.svc", body: http.NoBody, wantStatus: 200, wantForward: true},
		{name: "soap preflight passes", method: http.MethodOptions, path: "/Remote/Services88/Chat.svc", body: http.NoBody, wantStatus: 200, wantForward: true},
		// Only a POST reaches a WCF operation: the method is refused
		// before the (undeterminable) operation is.
		{name: "soap bodiless DELETE refused", method: http.MethodDelete, path: "/Remote/Services88/Chat.svc", body: http.NoBody, wantStatus: 405, wantReason: "method_not_allowed", wantAudit: true},
		{name: "soap header and body disagree", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 400, wantReason: "soap_action_ambiguous", wantAudit: true},
		{name: "soap no action, garbage body", path: "/Remote/Services88/Chat.svc", body: strings.NewReader("hello"), wantStatus: 400, wantReason: "soap_envelope_invalid", wantAudit: true},
		{name: "soap billion laughs", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body:       strings.NewReader(`<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Envelope><Body><ResetChatSession><ChatSessionId>&b;</ChatSessionId></ResetChatSession></Body></Envelope>`),
			wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: true},
		{name: "soap body past the bound", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Get(strings.Repeat("1", 70000)))), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: true},
		{name: "soap body read times out", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")},
			body: errReader{os.ErrDeadlineExceeded}, length: 100, wantStatus: 408, wantReason: "request_body_timeout", wantAudit: true},
		{name: "soap reset with a method override", path: "/Remote/Services88/Chat.svc", header: map[string]string{"SOAPAction": soaptest.ResetAction, "X-HTTP-Method-Override": "GET"},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 400, wantReason: "method_override_refused", wantAudit: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: PolicyConfig{Paths: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision"}})
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, tc.path, nil)
			var sent []byte
			switch b := tc.body.(type) {
			case *strings.Reader:
				sent, _ = io.ReadAll(b)
				r.Body = io.NopCloser(bytes.NewReader(sent))
				r.ContentLength = int64(len(sent))
			default:
				r.Body = io.NopCloser(tc.body)
				r.ContentLength = tc.length
			}
			if tc.length == -1 {
				r.ContentLength = -1
				r.TransferEncoding = []string{"chunked"}
			}
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			switch tc.user {
			case "":
				r.SetBasicAuth("bot", "pw")
			case "-":
			default:
				r.SetBasicAuth(tc.user, "pw")
			}
			forwarded := false
			w := httptest.NewRecorder()
			err := h.ServeHTTP(w, r, handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
				forwarded = true
				got, err := io.ReadAll(r.Body)
				if err != nil {
					t.Errorf("reading the forwarded body: %v", err)
				}
				if sent != nil && !bytes.Equal(got, sent) {
					t.Errorf("the next handler got a body of %d bytes, want the %d the client sent", len(got), len(sent))
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(entity)
				return nil
			}))
			if err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if forwarded != tc.wantForward {
				t.Errorf("forwarded = %v, want %v", forwarded, tc.wantForward)
			}
			if tc.wantReason != "" && !strings.Contains(w.Body.String(), `"`+tc.wantReason+`"`) {
				t.Errorf("body %s does not name reason %q", w.Body, tc.wantReason)
			}
			want := 0
			if tc.wantAudit {
				want = 1
			}
			if logs.Len() != want {
				t.Fatalf("%d audit records, want %d", logs.Len(), want)
			}
			if want == 1 {
				rec := logs.All()[0].ContextMap()
				ev, _ := rec["event"].(map[string]any)
				if tc.wantReason != "" && ev["reason"] != tc.wantReason {
					t.Errorf("audit event.reason = %v, want %s", ev["reason"], tc.wantReason)
				}
				rg, _ := rec["resetguard"].(map[string]any)
				if strings.Contains(tc.path, "Chat.svc") && rg["route"] != "soap" {
					t.Errorf("audit resetguard.route = %v, want soap", rg["route"])
				}
			}
		})
	}
}

// TestUpstreamAbort: reverse_proxy abandons a response whose upstream body
// fails with panic(http.ErrAbortHandler). While the response is held the
// client gets a clean 502 and the record says upstream_incomplete (or
// client_gone); once it streams, the abort goes on to cut the connection,
// and the record written at the overflow stays the only one.
func TestUpstreamAbort(t *testing.T) {
	partial := func(n int) handlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(bytes.Repeat([]byte(" "), n))
			panic(http.ErrAbortHandler)
		}
	}
	cases := []struct {
		name        string
		maxResponse int64
		cancel      bool
		wantPanic   bool
		wantStatus  int
		wantReason  string
	}{
		{name: "held", wantStatus: 502, wantReason: "upstream_incomplete"},
		{name: "held, client gone", cancel: true, wantStatus: statusClientClosed, wantReason: "client_gone"},
		{name: "streaming", maxResponse: 16, wantPanic: true, wantStatus: 200, wantReason: "entity_not_read"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: PolicyConfig{Paths: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision"}, MaxResponseBody: tc.maxResponse})
			r := botRequest(t)
			var cancel func()
			if tc.cancel {
				ctx, c := context.WithCancel(r.Context())
				cancel = c
				r = r.WithContext(ctx)
			}
			w := httptest.NewRecorder()
			next := partial(1000)
			if cancel != nil {
				inner := next
				next = func(w http.ResponseWriter, r *http.Request) error { cancel(); return inner(w, r) }
			}
			var recovered any
			func() {
				defer func() { recovered = recover() }()
				_ = h.ServeHTTP(w, r, next)
			}()
			if tc.wantPanic != (recovered == http.ErrAbortHandler) || (!tc.wantPanic && recovered != nil) {
				t.Fatalf("recovered %v, want an ErrAbortHandler panic: %v", recovered, tc.wantPanic)
			}
			if w.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tc.wantStatus)
			}
			if !tc.wantPanic && (w.Header().Get("Content-Length") == "100000" || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") || !strings.Contains(w.Body.String(), tc.wantReason)) {
				t.Errorf("headers %v body %s: want the guard's JSON error without the upstream's Content-Length", w.Header(), w.Body)
			}
			if logs.Len() != 1 {
				t.Fatalf("%d audit records, want 1", logs.Len())
			}
			ev, _ := logs.All()[0].ContextMap()["event"].(map[string]any)
			if ev["reason"] != tc.wantReason {
				t.Errorf("event.reason = %v, want %s", ev["reason"], tc.wantReason)
			}
		})
	}
}
