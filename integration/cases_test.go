package integration_test

// The table runner of the request suites (credentials, policy decisions,
// routes, upstream answers): one request per case through a Go client,
// then the same checks on every case: status, forwarded or not, the bytes
// the client got, the refusal's shape, and exactly one audit record with
// no secret in it (none for pass-through traffic).

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

type itCase struct {
	name    string
	base    string // gatewayURL unless set
	method  string
	path    string
	headers map[string]string
	body    string

	wantStatus    int
	wantForwarded bool
	// wantAudit: nil means "no audit record"; otherwise dotted-path
	// fields and their expected values.
	wantAudit map[string]any
	// wantHeaders on the client response.
	wantHeaders map[string]string
	// wantReason is the first reason in the guard's JSON error body.
	wantReason string
	// check runs extra assertions.
	check func(t *testing.T, resp *http.Response, body []byte, rec map[string]any, got []received)
}

// allowedRecord is what the record of a forwarded, successful reset of
// session id with a credential of scheme holds.
func allowedRecord(id float64, scheme string) map[string]any {
	return map[string]any{
		"schema":                          "resetguard.audit/v1",
		"event.type":                      []any{"allowed"},
		"event.outcome":                   "success",
		"http.response.status_code":       float64(200),
		"resetguard.session_id":           id,
		"resetguard.credential.scheme":    scheme,
		"resetguard.decision.allow":       true,
		"resetguard.upstream.status":      float64(200),
		"resetguard.upstream.entity_read": true,
		"resetguard.chat_session.id":      id,
	}
}

// deniedRecord is what the record of a refusal holds.
func deniedRecord(status float64, reason string) map[string]any {
	return map[string]any{
		"event.type":                []any{"denied"},
		"event.outcome":             "failure",
		"event.reason":              reason,
		"http.response.status_code": status,
	}
}

// withFields is m plus the dotted-path/value pairs kv.
func withFields(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

const restReset = "/api/v1/ChatSession/427/Reset"

// botAuth is a credential the test policy allows.
var botAuth = map[string]string{"Authorization": basic("bot", "hunter2")}

// caseSeq numbers the cases of all suites, so the backend's log of one
// case never holds another's requests.
var caseSeq atomic.Int64

// runCases sends each case as a subtest of t.
func runCases(t *testing.T, cases []itCase) {
	t.Helper()
	g := startGateway(t)
	piiValues := fixtureSecrets(t)
	g.newAuditLines(t) // what came before belongs to other tests
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caseID := "case-" + strconv.FormatInt(caseSeq.Add(1), 10)
			resp, body := tc.send(t, caseID)
			records := g.newAuditLines(t)
			got := g.backend.requests(caseID)
			tc.checkResponse(t, g, caseID, resp, body, got)
			var rec map[string]any
			if tc.wantAudit == nil {
				if len(records) != 0 {
					t.Fatalf("pass-through wrote %d audit records: %v", len(records), records[0]["_raw"])
				}
			} else {
				rec = tc.checkRecord(t, resp, records, piiValues)
			}
			if tc.check != nil {
				tc.check(t, resp, body, rec, got)
			}
		})
	}
}

func (tc itCase) send(t *testing.T, caseID string) (*http.Response, []byte) {
	t.Helper()
	base := tc.base
	if base == "" {
		base = gatewayURL
	}
	req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
	if err != nil {
		t.Fatal(err)
	}
	if tc.body == "" {
		req.Body = http.NoBody
		req.ContentLength = 0
	}
	for k, v := range tc.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Test-Case", caseID)
	return doRequest(t, req)
}

// checkResponse checks what the client and the backend got.
func (tc itCase) checkResponse(t *testing.T, g *gateway, caseID string, resp *http.Response, body []byte, got []received) {
	t.Helper()
	if resp.StatusCode != tc.wantStatus {
		t.Errorf("status = %d, want %d; body %.300s", resp.StatusCode, tc.wantStatus, body)
	}
	if tc.wantForwarded && len(got) != 1 {
		t.Fatalf("backend received %d requests, want 1", len(got))
	}
	if !tc.wantForwarded && len(got) != 0 {
		t.Fatalf("backend received %d requests, want none: %+v", len(got), got)
	}
	if tc.wantForwarded {
		if sent := g.backend.sentBody(caseID); !bytes.Equal(body, sent) {
			t.Errorf("client body (%d bytes) differs from the backend's (%d bytes)", len(body), len(sent))
		}
	}
	if tc.wantReason != "" {
		eb := decodeErrorBody(t, body)
		if eb.Status != tc.wantStatus || len(eb.Reasons) == 0 || eb.Reasons[0] != tc.wantReason || eb.RequestID == "" ||
			!eb.Error || eb.ErrorSource != "ResetGuard" || eb.ErrorType == "" || eb.ErrorMessage == "" {
			t.Errorf("error body = %+v, want the SuperOffice error shape with status %d, reason %s and a request id", eb, tc.wantStatus, tc.wantReason)
		}
		if eb.RequestID != resp.Header.Get("X-Request-Id") {
			t.Errorf("body RequestId %q, header X-Request-Id %q: want one id", eb.RequestID, resp.Header.Get("X-Request-Id"))
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("error Content-Type = %q", ct)
		}
	}
	for k, v := range tc.wantHeaders {
		if resp.Header.Get(k) != v {
			t.Errorf("response header %s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
}

// checkRecord checks that the case wrote exactly one record, with the
// wanted fields, the response's request id and no secret, and returns it.
func (tc itCase) checkRecord(t *testing.T, resp *http.Response, records []map[string]any, piiValues []string) map[string]any {
	t.Helper()
	if len(records) != 1 {
		t.Fatalf("audit records = %d, want exactly 1", len(records))
	}
	rec := records[0]
	for path, want := range tc.wantAudit {
		if g := field(rec, path); fmt.Sprint(g) != fmt.Sprint(want) {
			t.Errorf("audit %s = %v, want %v\nrecord: %s", path, g, want, rec["_raw"])
		}
	}
	// The request's id is http.request.id and the response header;
	// event.id is the record's own (the schema checks its form).
	if id := resp.Header.Get("X-Request-Id"); id == "" || field(rec, "http.request.id") != id {
		t.Errorf("audit http.request.id %v, response X-Request-Id %q: want one id", field(rec, "http.request.id"), id)
	}
	if field(rec, "event.id") == nil || field(rec, "event.id") == field(rec, "http.request.id") {
		t.Errorf("audit event.id %v: want the record's own id, not the request id: %s", field(rec, "event.id"), rec["_raw"])
	}
	raw := rec["_raw"].(string)
	for _, s := range append(append([]string{}, secrets...), piiValues...) {
		if strings.Contains(raw, s) {
			t.Errorf("audit record leaks %q: %s", s, raw)
		}
	}
	for _, key := range []string{"SessionKey", "session_key", "customer_", "first_message", "last_message"} {
		if strings.Contains(raw, key) {
			t.Errorf("audit record holds field %q: %s", key, raw)
		}
	}
	return rec
}
