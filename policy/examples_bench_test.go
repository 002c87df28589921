package policy

import (
	"context"
	"slices"
	"testing"
	"time"
)

// BenchmarkEvalExamples evaluates each example policy against a realistic
// input (a bot with a backend principal, the session in input.session) and
// reports the median evaluation time beside the mean.
func BenchmarkEvalExamples(b *testing.B) {
	input := mustValue(b, map[string]any{
		"action": "chat_session.reset", "route": "rest", "session_id": 427, "tenant": "Cust12345",
		"request": map[string]any{"id": "req-1", "method": "POST", "path": "/Cust12345/api/v1/ChatSession/427/Reset",
			"host": "gw", "remote_ip": "192.0.2.1", "headers": map[string]any{}, "query": map[string]any{}},
		"credential": map[string]any{"scheme": "bearer", "kind": "superoffice_token", "fingerprint": "0123456789abcdef0123456789abcdef", "tenant": "Cust12345"},
		"principal": map[string]any{"source": "backend", "subject": "bot@cust12345", "associate_id": 9,
			"user_type": "SystemAssociate", "tenant": "Cust12345"},
		"session": map[string]any{"ChatSessionId": 427, "Status": "InQueue", "ChatbotIsActive": true,
			"User": map[string]any{"AssociateId": 9}},
		"time": "2026-11-25T10:00:00Z",
	})
	for _, tc := range []struct{ name, dir, query string }{
		{"handoff", "../testdata/policies/handoff", "data.resetguard.handoff.decision"},
		{"bots_only", "../testdata/policies/bots_only", "data.resetguard.examples.bots_only.decision"},
		{"own_sessions", "../testdata/policies/own_sessions", "data.resetguard.examples.own_sessions.decision"},
		{"session_state", "../testdata/policies/session_state", "data.resetguard.examples.session_state.decision"},
		{"tenant_isolation", "../testdata/policies/tenant_isolation", "data.resetguard.examples.tenant_isolation.decision"},
		{"business_hours", "../testdata/policies/business_hours", "data.resetguard.examples.business_hours.decision"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e, err := New(context.Background(), Config{Paths: []string{tc.dir}, Query: tc.query, Timeout: 30 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if _, err := e.Eval(ctx, input); err != nil {
				b.Fatal(err)
			}
			samples := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, err := e.Eval(ctx, input); err != nil {
					b.Fatal(err)
				}
				if len(samples) < cap(samples) {
					samples = append(samples, time.Since(t0))
				}
			}
			slices.Sort(samples)
			b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds()), "median-ns")
		})
	}
}
