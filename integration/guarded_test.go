package integration_test

// What the gateway guards, through a Go client: every spelling of the REST
// route, the method and session id it insists on, the Agents route's
// bodies, and the traffic it lets through untouched. Raw spellings no Go
// client would send are in hostile_clients_test.go.

import (
	"net/http"
	"strings"
	"testing"
)

// TestResetSpellingsGuarded: each spelling of the REST route is guarded
// (401 without credentials) and never reaches the backend.
func TestResetSpellingsGuarded(t *testing.T) {
	var cases []itCase
	for _, p := range []string{
		"/api/v1/chatsession/427/reset",
		"/API/V1/CHATSESSION/427/RESET",
		"/SuperOffice/api/v1/ChatSession/427/Reset",
		"/Cust12345/api/v1/ChatSession/427/Reset/",
		"/api//v1/ChatSession//427/Reset",
		"/api/v1/ChatSession/427/./Reset",
		"/api/v1/x/../ChatSession/427/Reset",
		"/api/v1/ChatSession/427/%52eset",
		"/api/v1/ChatSession%2F427%2FReset",
		"/api/v1/ChatSession%252F427%252FReset",
		"/api/v1/ChatSession/427/Reset;jsessionid=1",
		"/api/v1/ChatSession/427/Reset.",
		"/api/v1/ChatSession/427/Reset?$select=x",
	} {
		cases = append(cases, itCase{
			name: "spelling " + p, method: "POST", path: p,
			wantStatus: 401, wantReason: "missing_credentials", wantAudit: deniedRecord(401, "missing_credentials"),
		})
	}
	runCases(t, cases)
}

func TestResetMethodAndSessionID(t *testing.T) {
	runCases(t, []itCase{
		{
			name: "id not a number", method: "POST", path: "/api/v1/ChatSession/abc/Reset", headers: botAuth,
			wantStatus: 400, wantReason: "bad_session_id", wantAudit: deniedRecord(400, "bad_session_id"),
		},
		{
			name: "id zero", method: "POST", path: "/api/v1/ChatSession/0/Reset", headers: botAuth,
			wantStatus: 400, wantReason: "bad_session_id", wantAudit: deniedRecord(400, "bad_session_id"),
		},
		{
			name: "id past int32", method: "POST", path: "/api/v1/ChatSession/2147483648/Reset", headers: botAuth,
			wantStatus: 400, wantReason: "bad_session_id", wantAudit: deniedRecord(400, "bad_session_id"),
		},
		{
			name: "wrong method GET", method: "GET", path: restReset, headers: botAuth,
			wantStatus: 405, wantReason: "method_not_allowed", wantHeaders: map[string]string{"Allow": "POST"},
			wantAudit: withFields(deniedRecord(405, "method_not_allowed"), "http.request.method", "GET"),
		},
		{
			name: "wrong method PUT", method: "PUT", path: restReset, headers: botAuth,
			wantStatus: 405, wantReason: "method_not_allowed", wantAudit: deniedRecord(405, "method_not_allowed"),
		},
		{
			name: "method override header", method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-HTTP-Method-Override": "GET"},
			wantStatus: 400, wantReason: "method_override_refused", wantAudit: deniedRecord(400, "method_override_refused"),
		},
	})
}

// TestResetAgentsRoute: the Agents route's session id is read from each
// body format, and the body reaches the backend as the client sent it.
func TestResetAgentsRoute(t *testing.T) {
	const agents = "/api/v1/Agents/Chat/ResetChatSession"
	runCases(t, []itCase{
		{
			name: "Agents route with JSON body", method: "POST", path: agents,
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:    `{"ChatSessionId": 831}`, wantStatus: 200, wantForwarded: true,
			wantAudit: withFields(allowedRecord(831, "basic"), "resetguard.route", "agents"),
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if string(got[0].Body) != `{"ChatSessionId": 831}` {
					t.Errorf("backend got body %q, want the client's body unchanged", got[0].Body)
				}
			},
		},
		{
			name: "Agents route with form body", method: "POST", path: "/SuperOffice/api/v1/agents/chat/resetchatsession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/x-www-form-urlencoded"},
			body:    "ChatSessionId=831", wantStatus: 200, wantForwarded: true,
			wantAudit: withFields(allowedRecord(831, "basic"), "resetguard.route", "agents"),
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if string(got[0].Body) != "ChatSessionId=831" {
					t.Errorf("backend got body %q", got[0].Body)
				}
			},
		},
		{
			name: "Agents route with XML body", method: "POST", path: agents,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/xml"},
			body:       `<ResetChatSession xmlns="http://www.superoffice.net/ws/crm/NetServer/Services88"><ChatSessionId>831</ChatSessionId></ResetChatSession>`,
			wantStatus: 200, wantForwarded: true, wantAudit: withFields(allowedRecord(831, "basic"), "resetguard.route", "agents"),
		},
		{
			name: "Agents route without an id", method: "POST", path: agents,
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:    `{"Other": 1}`, wantStatus: 400, wantReason: "bad_session_id", wantAudit: deniedRecord(400, "bad_session_id"),
		},
		{
			name: "Agents route body too large", method: "POST", path: agents,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:       `{"ChatSessionId": 831, "pad": "` + strings.Repeat("x", 70<<10) + `"}`,
			wantStatus: 413, wantReason: "request_body_too_large", wantAudit: deniedRecord(413, "request_body_too_large"),
		},
	})
}

// TestNonResetPassesUntouched: other calls reach the backend as sent,
// and leave no record.
func TestNonResetPassesUntouched(t *testing.T) {
	runCases(t, []itCase{
		{
			name: "non-reset GET passes untouched", method: "GET", path: "/api/v1/ChatSession/427",
			headers:    map[string]string{"Authorization": "SoTicket 7T:dGlja2V0LXNlY3JldA==", "X-ResetGuard-Decision": "client-value"},
			wantStatus: 200, wantForwarded: true, wantAudit: nil,
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if h := got[0].Header.Get("X-ResetGuard-Decision"); h != "client-value" {
					t.Errorf("pass-through request header changed: %q", h)
				}
			},
		},
		{
			name: "non-reset Pickup passes untouched", method: "POST", path: "/api/v1/ChatSession/427/Pickup",
			wantStatus: 200, wantForwarded: true, wantAudit: nil,
		},
	})
}
