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

	"go.uber.org/zap/zaptest/observer"

	"github.com/resetguard/caddy-resetguard/internal/classify/soaptest"
)

// errReader fails every read, as a body read interrupted by a deadline
// or a reset connection does.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// hostileCase is one hostile request and what the guard must make of
// it: its precise status and exactly one audit record, nothing refused
// reaching the next handler, and what passes through reaching it with the
// body intact.
type hostileCase struct {
	name        string
	method      string // "": POST
	path        string
	header      map[string]string
	body        io.Reader
	length      int64  // -1: unknown (chunked)
	user        string // "": Basic bot; "-": no Authorization
	wantStatus  int
	wantReason  string // "" for a forward or a pass-through
	wantForward bool
	wantAudit   bool
}

const (
	hostileAgentsPath = "/api/v1/Agents/Chat/ResetChatSession"
	hostileSOAPPath   = "/Remote/Services88/Chat.svc"
)

var hostileJSON = map[string]string{"Content-Type": "application/json"}

// TestHostileAgentsBodies: Agents bodies that are too deep, too large,
// chunked, DTD-laden or that fail to arrive.
func TestHostileAgentsBodies(t *testing.T) {
	deepJSON := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	padded := `{"ChatSessionId":1,"pad":"` + strings.Repeat("x", 70000) + `"}`
	runHostileCases(t, []hostileCase{
		{name: "agents deeply nested JSON", path: hostileAgentsPath, header: hostileJSON,
			body: strings.NewReader(`{"x":` + deepJSON[:60000] + `,"ChatSessionId":1}`), wantStatus: 400, wantReason: "bad_session_id", wantAudit: true},
		{name: "agents body past the bound", path: hostileAgentsPath, header: hostileJSON,
			body: strings.NewReader(padded), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: true},
		{name: "agents chunked body past the bound", path: hostileAgentsPath, length: -1, header: hostileJSON,
			body: strings.NewReader(padded), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: true},
		{name: "agents chunked body within the bound", path: hostileAgentsPath, length: -1, header: hostileJSON,
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 200, wantForward: true, wantAudit: true},
		{name: "agents XML with a DTD", path: hostileAgentsPath, header: map[string]string{"Content-Type": "application/xml"},
			body: strings.NewReader(`<!DOCTYPE x [<!ENTITY a "427">]><ResetChatSession><ChatSessionId>&a;</ChatSessionId></ResetChatSession>`), wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: true},
		{name: "agents body read times out", path: hostileAgentsPath, header: hostileJSON,
			body: errReader{os.ErrDeadlineExceeded}, length: 20, wantStatus: 408, wantReason: "request_body_timeout", wantAudit: true},
		{name: "agents body read fails", path: hostileAgentsPath, header: hostileJSON,
			body: errReader{io.ErrUnexpectedEOF}, length: 20, wantStatus: 400, wantReason: "request_body_unreadable", wantAudit: true},
	})
}

// TestHostileAgentsQuery: a second session id in the query string, which
// a model binder might prefer to the body's, is refused; other query
// parameters are not.
func TestHostileAgentsQuery(t *testing.T) {
	runHostileCases(t, []hostileCase{
		{name: "agents id in the query as well", path: hostileAgentsPath + "?chatsessionid=666", header: hostileJSON,
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 400, wantReason: "session_id_ambiguous", wantAudit: true},
		{name: "agents prefixed id in the query, encoded", path: hostileAgentsPath + "?request.Chat%53essionId=666&$select=Status", header: hostileJSON,
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 400, wantReason: "session_id_ambiguous", wantAudit: true},
		{name: "agents other query parameters", path: hostileAgentsPath + "?$select=Status,ChatSessionId&x=1", header: hostileJSON,
			body: strings.NewReader(`{"ChatSessionId":427}`), wantStatus: 200, wantForward: true, wantAudit: true},
	})
}

// TestHostileSOAPCredentials: a SOAP reset is decided on the credential
// the backend will authenticate: the HTTP header, or the envelope's
// ticket, never both.
func TestHostileSOAPCredentials(t *testing.T) {
	reset := soaptest.Envelope("", soaptest.Reset("427"))
	ticket := soaptest.Envelope(`<Credentials xmlns="`+soaptest.NS+`"><Ticket>7T:dGlja2V0</Ticket></Credentials>`, soaptest.Reset("427"))
	soap11 := map[string]string{"SOAPAction": soaptest.ResetAction}
	runHostileCases(t, []hostileCase{
		{name: "soap reset allowed", path: hostileSOAPPath, header: map[string]string{"SOAPAction": soaptest.ResetAction, "Content-Type": soaptest.ContentType11},
			body: strings.NewReader(reset), wantStatus: 200, wantForward: true, wantAudit: true},
		{name: "soap 1.2 reset denied", path: "/Cust1" + hostileSOAPPath, user: "mallory", header: map[string]string{"Content-Type": soaptest.ContentType12},
			body: strings.NewReader(reset), wantStatus: 403, wantReason: "mallory_refused", wantAudit: true},
		{name: "soap reset without credentials", path: hostileSOAPPath, user: "-", header: soap11,
			body: strings.NewReader(reset), wantStatus: 401, wantReason: "missing_credentials", wantAudit: true},
		{name: "soap ticket in the envelope", path: hostileSOAPPath, user: "-", header: soap11,
			body: strings.NewReader(ticket), wantStatus: 200, wantForward: true, wantAudit: true},
		// The backend authenticates the envelope, the guard would have
		// decided on the header: refused.
		{name: "soap ticket in the envelope and an Authorization header", path: hostileSOAPPath, header: soap11,
			body: strings.NewReader(ticket), wantStatus: 401, wantReason: "duplicate_authorization", wantAudit: true},
		{name: "soap user and password in the envelope", path: hostileSOAPPath, user: "-", header: soap11,
			body: strings.NewReader(soaptest.Envelope(`<Credentials xmlns="`+soaptest.NS+`"><Username>u</Username><Password>p</Password></Credentials>`, soaptest.Reset("427"))), wantStatus: 401, wantReason: "malformed_authorization", wantAudit: true},
	})
}

// TestHostileSOAPPassThrough: other Chat.svc operations, the WSDL and
// preflights pass through unaudited, with their bodies intact.
func TestHostileSOAPPassThrough(t *testing.T) {
	get := map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")}
	runHostileCases(t, []hostileCase{
		{name: "soap other operation passes with its body", path: hostileSOAPPath, header: get,
			body: strings.NewReader(soaptest.Envelope("", soaptest.Get("427"))), wantStatus: 200, wantForward: true},
		{name: "soap chunked other operation passes", path: hostileSOAPPath, length: -1, header: get,
			body: strings.NewReader(soaptest.Envelope("", soaptest.Get("427"))), wantStatus: 200, wantForward: true},
		{name: "soap WSDL passes", method: http.MethodGet, path: hostileSOAPPath, body: http.NoBody, wantStatus: 200, wantForward: true},
		{name: "soap preflight passes", method: http.MethodOptions, path: hostileSOAPPath, body: http.NoBody, wantStatus: 200, wantForward: true},
	})
}

// TestHostileSOAPMethods: only a plain POST reaches a WCF operation: the
// method is refused before the (undeterminable) operation is.
func TestHostileSOAPMethods(t *testing.T) {
	runHostileCases(t, []hostileCase{
		{name: "soap reset by GET", method: http.MethodGet, path: hostileSOAPPath, header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 405, wantReason: "method_not_allowed", wantAudit: true},
		{name: "soap bodiless DELETE refused", method: http.MethodDelete, path: hostileSOAPPath, body: http.NoBody, wantStatus: 405, wantReason: "method_not_allowed", wantAudit: true},
		{name: "soap reset with a method override", path: hostileSOAPPath, header: map[string]string{"SOAPAction": soaptest.ResetAction, "X-HTTP-Method-Override": "GET"},
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 400, wantReason: "method_override_refused", wantAudit: true},
	})
}

// TestHostileSOAPEnvelopes: envelopes whose operation is ambiguous,
// unreadable, DTD-laden, too large or late are refused, not passed.
func TestHostileSOAPEnvelopes(t *testing.T) {
	get := map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")}
	runHostileCases(t, []hostileCase{
		{name: "soap header and body disagree", path: hostileSOAPPath, header: get,
			body: strings.NewReader(soaptest.Envelope("", soaptest.Reset("427"))), wantStatus: 400, wantReason: "soap_action_ambiguous", wantAudit: true},
		{name: "soap no action, garbage body", path: hostileSOAPPath, body: strings.NewReader("hello"), wantStatus: 400, wantReason: "soap_envelope_invalid", wantAudit: true},
		{name: "soap billion laughs", path: hostileSOAPPath, header: map[string]string{"SOAPAction": soaptest.ResetAction},
			body:       strings.NewReader(`<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Envelope><Body><ResetChatSession><ChatSessionId>&b;</ChatSessionId></ResetChatSession></Body></Envelope>`),
			wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: true},
		{name: "soap body past the bound", path: hostileSOAPPath, header: get,
			body: strings.NewReader(soaptest.Envelope("", soaptest.Get(strings.Repeat("1", 70000)))), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: true},
		{name: "soap body read times out", path: hostileSOAPPath, header: get,
			body: errReader{os.ErrDeadlineExceeded}, length: 100, wantStatus: 408, wantReason: "request_body_timeout", wantAudit: true},
	})
}

// runHostileCases sends each case through a freshly provisioned handler
// with the test policy, whose next handler checks the body it receives
// and answers with the entity.
func runHostileCases(t *testing.T, cases []hostileCase) {
	t.Helper()
	entity := entityFixture(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy()})
			r, sent := tc.request()
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
			tc.check(t, w, forwarded, logs)
		})
	}
}

// request builds the case's request; sent is the body as the client
// sends it, when known in advance.
func (tc hostileCase) request() (r *http.Request, sent []byte) {
	method := tc.method
	if method == "" {
		method = http.MethodPost
	}
	r = httptest.NewRequest(method, tc.path, nil)
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
	return r, sent
}

// check compares the response, the forwarding and the audit trail with
// the case's expectations.
func (tc hostileCase) check(t *testing.T, w *httptest.ResponseRecorder, forwarded bool, logs *observer.ObservedLogs) {
	t.Helper()
	if w.Code != tc.wantStatus {
		t.Errorf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
	}
	if forwarded != tc.wantForward {
		t.Errorf("forwarded = %v, want %v", forwarded, tc.wantForward)
	}
	if tc.wantReason != "" && !strings.Contains(w.Body.String(), `"`+tc.wantReason+`"`) {
		t.Errorf("body %s does not name reason %q", w.Body, tc.wantReason)
	}
	if !tc.wantAudit {
		if logs.Len() != 0 {
			t.Fatalf("%d audit records, want 0", logs.Len())
		}
		return
	}
	rec, ev := soleRecord(t, logs)
	if tc.wantReason != "" && ev["reason"] != tc.wantReason {
		t.Errorf("audit event.reason = %v, want %s", ev["reason"], tc.wantReason)
	}
	rg, _ := rec["resetguard"].(map[string]any)
	if strings.Contains(tc.path, "Chat.svc") && rg["route"] != "soap" {
		t.Errorf("audit resetguard.route = %v, want soap", rg["route"])
	}
}

// TestUpstreamAbort: reverse_proxy abandons a response whose upstream body
// fails with panic(http.ErrAbortHandler). While the response is held the
// client gets a clean 502 and the record says upstream_incomplete (or
// client_gone); once it streams, the abort goes on to cut the connection,
// and the record written at the overflow stays the only one. The backend
// had begun to answer, so it had the request: every outcome is unknown.
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
			h, logs := provisioned(t, &Handler{Policy: testPolicy(), MaxResponseBody: tc.maxResponse})
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
			checkEvent(t, ev, tc.wantReason, "unknown", "allowed")
		})
	}
}
