package resetguard

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest/observer"
)

// Issue 16, through the real, provisioned handler: a policy may end in an
// allow only by saying so, as true or a well-formed {"allow": true, ..}.
// A built-in error anywhere, a conflict or a timeout is 503 policy_error
// (forwarded only under dry_run, and recorded as such); a decision of the
// wrong shape is 403 policy_result_invalid. The policies are in
// testdata/strict (see its README).

// strictCase is one reset by the Basic user "chatbot" (or user) under a
// policy of testdata/strict.
type strictCase struct {
	name   string
	policy PolicyConfig
	user   string // "": chatbot

	status   int      // 200: forwarded
	reasons  []string // the refusal's, or the recorded decision's when forwarded
	decision string   // {http.reset_guard.decision}
}

// strictPolicy is a PolicyConfig for a testdata/strict policy directory
// and the rule of its package the query names.
func strictPolicy(dir, rule string) PolicyConfig {
	return PolicyConfig{Paths: []string{"testdata/strict/" + dir}, Query: "data.strict." + dir + "." + rule}
}

// dryRun is p in dry_run mode.
func dryRun(p PolicyConfig) PolicyConfig {
	p.DryRun = true
	return p
}

// errorStatus is p with another error_status.
func errorStatus(p PolicyConfig, status int) PolicyConfig {
	p.ErrorStatus = status
	return p
}

var (
	refusedPolicyError = []string{"policy_error"}
	refusedInvalid     = []string{"policy_result_invalid"}
)

// TestStrictBuiltinErrors: issue 16's fail-open policy and a built-in
// error directly inside the decision are evaluation errors; the policy
// that guards its call decides as its author meant.
func TestStrictBuiltinErrors(t *testing.T) {
	runStrictCases(t, []strictCase{
		{name: "fail-open policy: error in a negated rule", policy: strictPolicy("failopen", "decision"),
			status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "fail-open policy with its own error_status", policy: errorStatus(strictPolicy("failopen", "decision"), 504),
			status: 504, reasons: refusedPolicyError, decision: "error"},
		{name: "fail-open policy under dry_run: forwarded, recorded as a policy error",
			policy: dryRun(strictPolicy("failopen", "decision")), status: 200, reasons: refusedPolicyError, decision: "dry_run"},
		{name: "error directly inside the decision", policy: strictPolicy("direct", "decision"),
			status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "guarded call: no error, allowed", policy: strictPolicy("guarded", "decision"),
			status: 200, reasons: []string{"not_blocked"}, decision: "allow"},
		{name: "remote $ref of a JSON Schema: not fetched, an error", policy: strictPolicy("schema_ref", "decision"),
			status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "time.now_ns is allowed", policy: strictPolicy("timecheck", "decision"),
			status: 200, reasons: []string{"after_2020"}, decision: "allow"},
	})
}

// TestStrictDecisionShapes: only true or a well-formed {"allow": true}
// forwards; every other shape, partial sets included, is a deny.
func TestStrictDecisionShapes(t *testing.T) {
	allowed := []struct{ rule, reason string }{
		{"allow_true", ""}, {"allow_object", "ok"}, {"set_reasons", "a,b"},
	}
	invalid := []string{
		"allow_string", "allow_number", "allow_null", "object_allow_string", "object_allow_number",
		"object_allow_nested", "object_allow_list", "object_capitalised", "object_extra_key",
		"object_non_string_key", "object_status_on_allow", "object_bad_header", "object_reasons_string",
		"list_of_true", "set_of_true", "set_of_objects", "empty_set", "partial_object", "undefined_rule",
	}
	var cases []strictCase
	for _, a := range allowed {
		var reasons []string
		if a.reason == "a,b" {
			reasons = []string{"a", "b"}
		} else if a.reason != "" {
			reasons = []string{a.reason}
		}
		cases = append(cases, strictCase{name: a.rule, policy: strictPolicy("shapes", a.rule),
			status: 200, reasons: reasons, decision: "allow"})
	}
	for _, rule := range invalid {
		cases = append(cases, strictCase{name: rule, policy: strictPolicy("shapes", rule),
			status: 403, reasons: refusedInvalid, decision: "deny"})
	}
	runStrictCases(t, cases)
}

// TestStrictConflicts: conflicting rules are an evaluation error, never
// whichever value came first; an else chain is not a conflict.
func TestStrictConflicts(t *testing.T) {
	runStrictCases(t, []strictCase{
		{name: "complete rule", policy: strictPolicy("conflicts", "complete"), status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "partial object key", policy: strictPolicy("conflicts", "object_key"), status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "function", policy: strictPolicy("conflicts", "function"), status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "else chain", policy: strictPolicy("conflicts", "with_else"), status: 403, reasons: []string{"first"}, decision: "deny"},
		{name: "conflict under dry_run", policy: dryRun(strictPolicy("conflicts", "complete")),
			status: 200, reasons: refusedPolicyError, decision: "dry_run"},
	})
}

// TestStrictWith: `with` does not hide an error; a built-in the author
// replaces with a value is the author's explicit decision.
func TestStrictWith(t *testing.T) {
	runStrictCases(t, []strictCase{
		{name: "error inside a with-scoped evaluation", policy: strictPolicy("with", "scoped"),
			status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "error inside a function that replaces a built-in", policy: strictPolicy("with", "replaced"),
			status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "built-in replaced with a value", policy: strictPolicy("with", "mocked"),
			status: 200, reasons: []string{"mocked"}, decision: "allow"},
	})
}

// TestStrictPrint: print() does not change a decision, but an error in
// its arguments is an evaluation error, whether or not debug logging
// would show the output (policy/print_test.go checks where it goes).
func TestStrictPrint(t *testing.T) {
	runStrictCases(t, []strictCase{
		{name: "print", policy: strictPolicy("print", "decision"), status: 200, reasons: []string{"printed"}, decision: "allow"},
		{name: "error in a print argument", policy: strictPolicy("print", "erroring"),
			status: 503, reasons: refusedPolicyError, decision: "error"},
	})
}

func runStrictCases(t *testing.T, cases []strictCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: tc.policy})
			tc.check(t, h, logs)
		})
	}
}

// check sends the reset and checks the answer, whether it was forwarded,
// the placeholder and the one audit record.
func (tc strictCase) check(t *testing.T, h *Handler, logs *observer.ObservedLogs) {
	t.Helper()
	user := tc.user
	if user == "" {
		user = "chatbot"
	}
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	r.Header = basicHeader(user, nil)
	w, repl, forwarded := serveStep(t, h, r)
	if w.Code != tc.status {
		t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
	}
	if forwarded != (tc.status == http.StatusOK) {
		t.Fatalf("forwarded = %v with status %d", forwarded, w.Code)
	}
	if got, _ := repl.GetString("http.reset_guard.decision"); got != tc.decision {
		t.Errorf("{http.reset_guard.decision} = %q, want %q", got, tc.decision)
	}
	if !forwarded {
		checkStepBody(t, w, tc.status, tc.reasons)
	}
	rec, _ := soleRecord(t, logs)
	rg, _ := rec["resetguard"].(map[string]any)
	dec, _ := rg["decision"].(map[string]any)
	var reasons []string
	list, _ := dec["reasons"].([]any)
	for _, r := range list {
		s, _ := r.(string)
		reasons = append(reasons, s)
	}
	if !slices.Equal(reasons, tc.reasons) {
		t.Errorf("recorded decision reasons %q, want %q", reasons, tc.reasons)
	}
	if wantAllow := tc.decision == "allow"; dec["allow"] != wantAllow {
		t.Errorf("recorded decision.allow = %v, want %v", dec["allow"], wantAllow)
	}
	if dec["dry_run"] != tc.policy.DryRun {
		t.Errorf("recorded decision.dry_run = %v, want %v", dec["dry_run"], tc.policy.DryRun)
	}
}
