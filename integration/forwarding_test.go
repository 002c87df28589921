package integration_test

// Allowed resets and what the backend answers: the client gets the
// backend's bytes unchanged whatever they are, and the record says what
// the guard could read of them. Answers no sound backend gives are in
// hostile_upstreams_test.go.

import "testing"

func TestResetUpstreamAnswers(t *testing.T) {
	runCases(t, []itCase{
		{
			name: "Agents route answers null", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json", "X-Backend-Mode": "null"},
			body:    `{"ChatSessionId": 831}`, wantStatus: 200, wantForwarded: true,
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "failure", "event.reason": "upstream_no_entity",
				"resetguard.upstream.entity_read": false},
		},
		{
			name: "XML response", method: "POST", path: "/api/v1/ChatSession/428/Reset",
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Accept": "application/xml", "X-Backend-Mode": "xml"},
			wantStatus: 200, wantForwarded: true,
			wantAudit: withFields(allowedRecord(428, "basic"), "resetguard.upstream.content_type", "application/xml; charset=utf-8"),
		},
		{
			name: "gzip response reaches the client as gzip", method: "POST", path: "/api/v1/ChatSession/429/Reset",
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Accept-Encoding": "gzip", "X-Backend-Mode": "gzip"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(429, "basic"),
			wantHeaders: map[string]string{"Content-Encoding": "gzip"},
		},
		{
			name: "upstream 500", method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-Backend-Mode": "500"},
			wantStatus: 500, wantForwarded: true,
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "failure", "event.reason": "upstream_status",
				"resetguard.upstream.status": float64(500), "http.response.status_code": float64(500)},
		},
		{
			// The dial fails: the backend never received the request, so
			// the reset did not happen.
			name: "upstream unreachable", base: deadURL, method: "POST", path: restReset, headers: botAuth,
			wantStatus: 502, wantReason: "upstream_error",
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "failure", "event.reason": "upstream_error",
				"http.response.status_code": float64(502), "resetguard.upstream.status": float64(0),
				"resetguard.upstream.error": "upstream unreachable"},
		},
		{
			name: "response larger than the hold streams through", method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-Backend-Mode": "large"},
			wantStatus: 200, wantForwarded: true,
			wantAudit: map[string]any{"event.outcome": "unknown", "event.reason": "entity_not_read",
				"resetguard.upstream.entity_read": false, "http.response.status_code": float64(200)},
		},
	})
}
