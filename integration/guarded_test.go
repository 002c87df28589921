package integration_test

// What the gateway guards, through a Go client: every spelling of the REST
// route, the method and session id it insists on, the Agents route's
// bodies, and the traffic it lets through untouched. Raw spellings no Go
// client would send are in hostile_clients_test.go.

import (
	"fmt"
	"net/http"
	"strconv"
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
// body format, and the backend receives the canonical request the guard
// decided on: the canonical route, and {"ChatSessionId":N} as JSON.
func TestResetAgentsRoute(t *testing.T) {
	const agents = "/api/v1/Agents/Chat/ResetChatSession"
	runCases(t, []itCase{
		{
			name: "Agents route with JSON body", method: "POST", path: agents,
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:    `{"ChatSessionId": 831}`, wantStatus: 200, wantForwarded: true,
			wantAudit: withFields(allowedRecord(831, "basic"), "resetguard.route", "agents"),
			check:     canonicalAgents("/api/v1/Agents/Chat/ResetChatSession", 831),
		},
		{
			name: "Agents route with form body", method: "POST", path: "/SuperOffice/api/v1/agents/chat/resetchatsession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/x-www-form-urlencoded"},
			body:    "ChatSessionId=831", wantStatus: 200, wantForwarded: true,
			wantAudit: withFields(allowedRecord(831, "basic"), "resetguard.route", "agents"),
			check:     canonicalAgents("/SuperOffice/api/v1/Agents/Chat/ResetChatSession", 831),
		},
		{
			name: "Agents route with XML body", method: "POST", path: agents,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/xml"},
			body:       `<ResetChatSession xmlns="http://www.superoffice.net/ws/crm/NetServer/Services88"><ChatSessionId>831</ChatSessionId></ResetChatSession>`,
			wantStatus: 200, wantForwarded: true, wantAudit: withFields(allowedRecord(831, "basic"), "resetguard.route", "agents"),
			check: canonicalAgents("/api/v1/Agents/Chat/ResetChatSession", 831),
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

// canonicalAgents checks that the backend received the canonical Agents
// request for id on path, and that the record names what was forwarded.
func canonicalAgents(path string, id int) func(*testing.T, *http.Response, []byte, map[string]any, []received) {
	return func(t *testing.T, _ *http.Response, _ []byte, rec map[string]any, got []received) {
		t.Helper()
		body := fmt.Sprintf(`{"ChatSessionId":%d}`, id)
		// The backend notes RawPath|Path; a canonical path needs no escaping.
		if got[0].Path != "|"+path || string(got[0].Body) != body ||
			got[0].Header.Get("Content-Type") != "application/json; charset=utf-8" ||
			got[0].Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("backend got %s %q (%s, length %s), want %s %q as JSON",
				got[0].Path, got[0].Body, got[0].Header.Get("Content-Type"), got[0].Header.Get("Content-Length"), path, body)
		}
		if p := field(rec, "resetguard.forwarded.path"); p != path {
			t.Errorf("record resetguard.forwarded.path = %v, want %s", p, path)
		}
		if b := field(rec, "resetguard.forwarded.body"); b != body {
			t.Errorf("record resetguard.forwarded.body = %v, want %s", b, body)
		}
	}
}

// TestCanonicalForwarding: what the guard decided is what the backend
// receives. A reset however spelled reaches the backend, through Caddy's
// reverse_proxy, as the canonical route with the decided id; a request
// naming the id where the backend could bind another one is refused.
func TestCanonicalForwarding(t *testing.T) {
	bot := map[string]string{"Authorization": basic("bot", "hunter2")}
	canonicalREST := func(want string) func(*testing.T, *http.Response, []byte, map[string]any, []received) {
		return func(t *testing.T, _ *http.Response, _ []byte, rec map[string]any, got []received) {
			t.Helper()
			if got[0].Path != "|"+want || len(got[0].Body) != 0 {
				t.Errorf("backend got %s with a %d-byte body, want |%s and none", got[0].Path, len(got[0].Body), want)
			}
			if p := field(rec, "resetguard.forwarded.path"); p != want {
				t.Errorf("record resetguard.forwarded.path = %v, want %s", p, want)
			}
		}
	}
	runCases(t, []itCase{
		{
			name: "odd spelling forwarded canonical", method: "POST", headers: bot,
			path:       "/SuperOffice/x/..%2F/API/v1/chatsession/0427/(S(abc))/Reset.%20/",
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "basic"),
			check: canonicalREST("/SuperOffice/api/v1/ChatSession/427/Reset"),
		},
		{
			name: "empty JSON body dropped", method: "POST", path: "/api/v1/ChatSession/427/Reset",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"}, body: "{}",
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "basic"),
			check: canonicalREST("/api/v1/ChatSession/427/Reset"),
		},
		{
			name: "id in the query beside the path", method: "POST", path: "/api/v1/ChatSession/427/Reset?chatSessionId=9", headers: bot,
			wantStatus: 400, wantReason: "session_id_ambiguous", wantAudit: deniedRecord(400, "session_id_ambiguous"),
		},
		{
			name: "id in a REST body", method: "POST", path: "/api/v1/ChatSession/427/Reset",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/x-www-form-urlencoded"},
			body:    "chatSessionId=9", wantStatus: 400, wantReason: "request_body_refused", wantAudit: deniedRecord(400, "request_body_refused"),
		},
		{
			name: "prefixed id in an Agents form body", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/x-www-form-urlencoded"},
			body:    "ChatSessionId=427&request.ChatSessionId=9", wantStatus: 400, wantReason: "session_id_ambiguous",
			wantAudit: deniedRecord(400, "session_id_ambiguous"),
		},
	})
}
