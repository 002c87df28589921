package policy_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/resetguard/caddy-resetguard/policy"
)

// exampleNames are the example policies of testdata/policies, each in its
// own directory, package resetguard.examples.<name>.
var exampleNames = []string{"bots_only", "own_sessions", "session_state", "tenant_isolation", "business_hours"}

// exampleInput is a request every example policy allows: a system user
// bot of Cust12345, on a Wednesday at 11:00 in Oslo, resetting a session
// in the queue that it holds.
const exampleInput = `{
  "action": "chat_session.reset",
  "route": "rest",
  "session_id": 427,
  "tenant": "Cust12345",
  "request": {"id": "r-1", "method": "POST", "path": "/Cust12345/api/v1/ChatSession/427/Reset",
              "host": "sod2.superoffice.com", "remote_ip": "203.0.113.9", "headers": {}, "query": {}},
  "credential": {"scheme": "bearer", "kind": "superoffice_token", "fingerprint": "c6548c08cd277c52ee38b9bc4a544830", "tenant": "cust12345"},
  "principal": {"source": "backend", "subject": "integration", "associate_id": 3, "user_type": "SystemAssociate", "tenant": "Cust12345"},
  "session": {"ChatSessionId": 427, "Status": "InQueue", "User": {"AssociateId": 3}, "TransferTo": null, "ChatbotIsActive": true},
  "time": "2026-11-25T10:00:00Z"
}`

// TestExamplePoliciesLoadTogether loads the five example policies (and the
// handoff example) into one engine, as an operator combining them would,
// and asks each for its decision: the data documents must merge under
// resetguard_examples without conflict, and each policy must still see its
// own data.
func TestExamplePoliciesLoadTogether(t *testing.T) {
	ctx := context.Background()
	var dirs []string
	for _, name := range exampleNames {
		dirs = append(dirs, filepath.Join(examplesDir, name))
	}
	allowed := parseJSON(t, exampleInput).(map[string]any)
	if err := inputSchema(t).Validate(allowed); err != nil {
		t.Fatalf("the example input does not validate: %#v", err)
	}
	evalDoc := func(t *testing.T, e *policy.Engine, doc map[string]any) policy.Decision {
		t.Helper()
		v, err := ast.InterfaceToValue(doc)
		if err != nil {
			t.Fatal(err)
		}
		d, err := e.Eval(ctx, v)
		if err != nil {
			t.Fatalf("%s: %v", e.Query(), err)
		}
		return d
	}
	// deny changes the allowed input so that exactly this policy refuses,
	// with reason, because of data loaded from its own directory (where it
	// has one).
	denies := map[string]struct {
		change func(d map[string]any)
		reason string
	}{
		"bots_only": {func(d map[string]any) {
			d["principal"] = map[string]any{"source": "backend", "subject": "sare", "associate_id": json.Number("3"), "user_type": "InternalAssociate", "tenant": "Cust12345"}
		}, "not_a_bot"},
		"own_sessions":  {func(d map[string]any) { delete(d, "session") }, "session_unknown"},
		"session_state": {func(d map[string]any) { obj(d, "session")["Status"] = "ClosedFromQueue" }, "session_closed"},
		"tenant_isolation": {func(d map[string]any) {
			d["tenant"] = "Cust66666"
			obj(d, "credential")["tenant"] = "Cust66666"
			obj(d, "principal")["tenant"] = "Cust66666"
		}, "tenant_suspended"},
		"business_hours": {func(d map[string]any) { d["time"] = "2026-12-24T10:00:00Z" }, "holiday"},
	}
	for _, set := range []struct {
		name string
		dirs []string
	}{
		{"five examples", dirs},
		{"five examples and handoff", append(slices.Clone(dirs), filepath.Join(examplesDir, "handoff"))},
	} {
		t.Run(set.name, func(t *testing.T) {
			for _, name := range exampleNames {
				t.Run(name, func(t *testing.T) {
					e, err := policy.New(ctx, policy.Config{Paths: set.dirs, Query: "data.resetguard.examples." + name + ".decision", Timeout: 5 * time.Second})
					if err != nil {
						t.Fatalf("loading %v: %v", set.dirs, err)
					}
					if d := evalDoc(t, e, parseJSON(t, exampleInput).(map[string]any)); !d.Allow || len(d.Reasons) != 1 || d.Reasons[0] == "" {
						t.Errorf("allowed input: %+v", d)
					}
					doc := parseJSON(t, exampleInput).(map[string]any)
					denies[name].change(doc)
					d := evalDoc(t, e, doc)
					if d.Allow || !slices.Equal(d.Reasons, []string{denies[name].reason}) {
						t.Errorf("got %+v, want a deny with [%s]", d, denies[name].reason)
					}
					// The policy-side decision contract: allow and reasons only.
					if d.Status != 0 || len(d.Headers) != 0 {
						t.Errorf("unexpected status or headers: %+v", d)
					}
				})
			}
		})
	}
}
