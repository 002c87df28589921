package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/cli"
)

// TestPolicyEvalCommand evaluates the bundled example and the policy and
// query flags, alone and over a config's.
func TestPolicyEvalCommand(t *testing.T) {
	runEvalCases(t, []evalCase{
		{
			name:     "bundled example allows the listed bot",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantQuery(cmdHandoffQ), wantHeader("X-ResetGuard-Bot", "onsite-chatbot"), wantEvaluations(1)},
		},
		{
			name:     "bundled example denies a protected session",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "-d and the query argument, without a config",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "default query undefined in the handoff policy is an invalid result, denied",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(false, "policy_result_invalid"), wantQuery("data.resetguard.allow")},
		},
		{
			name:     "the query argument overrides the config's",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Query: "data.resetguard.handoff.no_such_rule", Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(false, "policy_result_invalid"), wantQuery("data.resetguard.handoff.no_such_rule")},
		},
		{
			name:     "repeat: the first evaluation is a warm-up",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Repeat: 5},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantEvaluations(4)},
		},
	})
}

// TestPolicyEvalHandlerPick picks one of a config's several reset_guard
// handlers, or refuses to guess.
func TestPolicyEvalHandlerPick(t *testing.T) {
	runEvalCases(t, []evalCase{
		{
			name:     "-d and the query argument override the picked handler's",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(0), Data: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "ok"), wantQuery("data.resetguard.test.decision")},
		},
		{
			name:     "two handlers without --handler",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Input: cmdBotInput},
			wantCode: 2,
			wantErr: []string{"found 2 reset_guard handlers in " + cmdTwoSites, "--handler N",
				"0: apps.http.servers.srv0.routes[0].handle[0] (policy testdata/policies/handoff, query " + cmdHandoffQ + ")",
				"1: apps.http.servers.srv1.routes[0].handle[0] (policy testdata/caddy, query data.resetguard.test.decision)"},
		},
		{
			name:     "--handler 0 picks the handoff site",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(0), Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "--handler 1 picks the second site",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(1), Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "ok"), wantQuery("data.resetguard.test.decision"), wantHeader("X-ResetGuard-Decision", "allow")},
		},
		{
			name:     "--handler out of range",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(2), Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"--handler 2", "has 2 reset_guard handler(s)"},
		},
		{
			name:     "negative --handler",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(-1), Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"--handler -1: must be 0 or more"},
		},
		{
			name:     "--handler without --config",
			opts:     cli.EvalOptions{Handler: cmdPick(1), Data: []string{cmdHandoffDir}, Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"need --config"},
		},
	})
}

// TestPolicyEvalConfig reads the handler's policy from JSON and Caddyfile
// configs: nested handlers, local bundles, remote bundle services (never
// contacted), adapters, and the errors Caddy itself would give.
func TestPolicyEvalConfig(t *testing.T) {
	// A JSON config (no adapter) with the guard nested in a subroute and a
	// misspelt option in another.
	jsonConfig := cmdWriteFile(t, "config.json", `{"apps": {"http": {"servers": {"gw": {
		"listen": [":8092"],
		"routes": [{"handle": [{"handler": "subroute", "routes": [{"handle": [
			{"handler": "reset_guard", "policy": {"paths": ["testdata/policies/handoff"], "query": "data.resetguard.handoff.decision"}},
			{"handler": "static_response", "status_code": 200}
		]}]}]}]
	}}}}}`)
	noGuard := cmdWriteFile(t, "none.json", `{"apps": {"http": {"servers": {"gw": {"listen": [":8092"], "routes": []}}}}}`)
	misspelt := cmdWriteFile(t, "misspelt.json", `{"handler": "reset_guard", "polcy": {"paths": ["testdata/caddy"]}}`)
	bundleOnly := cmdWriteFile(t, "bundle.json", `{"handler": "reset_guard", "policy": {"bundles": ["testdata/policies/handoff"], "query": "data.resetguard.handoff.decision"}}`)
	remoteOnly := cmdWriteFile(t, "remote.json", `{"handler": "reset_guard", "policy": {"remote": {"url": "http://127.0.0.1:9", "resource": "b.tar.gz"}}}`)
	remoteAndLocal := cmdWriteFile(t, "remote-local.json", `{"handler": "reset_guard", "policy": {"paths": ["testdata/policies/handoff"], "query": "data.resetguard.handoff.decision", "remote": {"url": "http://127.0.0.1:9", "resource": "b.tar.gz"}}}`)

	runEvalCases(t, []evalCase{
		{
			name:     "JSON config, guard nested in a subroute",
			opts:     cli.EvalOptions{Config: jsonConfig, Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "local bundle from the config",
			opts:     cli.EvalOptions{Config: bundleOnly, Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "--bundle flag replaces the config's local sources",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(1), Bundles: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "remote bundle only: nothing local to evaluate",
			opts:     cli.EvalOptions{Config: remoteOnly, Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"remote bundle service http://127.0.0.1:9", "give -d/--data or -b/--bundle"},
		},
		{
			name:     "remote bundle only, with -d",
			opts:     cli.EvalOptions{Config: remoteOnly, Data: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot")},
		},
		{
			name:       "remote bundle next to local paths: local only, with a warning",
			opts:       cli.EvalOptions{Config: remoteAndLocal, Input: cmdBotInput},
			wantCode:   0,
			checks:     []evalCheck{wantDecision(true, "listed_bot")},
			wantStderr: "evaluating its local sources only",
		},
		{
			name:     "explicit adapter",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Adapter: "caddyfile", Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot")},
		},
		{
			name:     "unknown adapter",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Adapter: "nginx", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"unrecognized config adapter: nginx"},
		},
		{
			name:     "config without a reset_guard",
			opts:     cli.EvalOptions{Config: noGuard, Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"no reset_guard handler in"},
		},
		{
			name:     "misspelt handler option is refused as Caddy would",
			opts:     cli.EvalOptions{Config: misspelt, Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"reset_guard handler at (top level)", "polcy"},
		},
		{
			name:     "missing config file",
			opts:     cli.EvalOptions{Config: "testdata/cmd/no-such-Caddyfile", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"reading config", "no-such-Caddyfile"},
		},
	})
}

// TestPolicyEvalInput reads the input document from a file or stdin and
// refuses anything but one JSON object.
func TestPolicyEvalInput(t *testing.T) {
	botInput := cmdReadFile(t, cmdBotInput)

	runEvalCases(t, []evalCase{
		{
			name:     "input from stdin",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: "-"},
			stdin:    botInput,
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot")},
		},
		{
			name:     "missing input file",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: "testdata/cmd/no-such-input.json"},
			wantCode: 2,
			wantErr:  []string{"reading input", "no-such-input.json"},
		},
		{
			name:     "malformed input JSON",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: "testdata/cmd/malformed.json"},
			wantCode: 2,
			wantErr:  []string{"input testdata/cmd/malformed.json: not valid JSON"},
		},
		{
			name:     "trailing data after the input object",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: "-"},
			stdin:    botInput + `{"x": 1}`,
			wantCode: 2,
			wantErr:  []string{"input stdin: not valid JSON"},
		},
		{
			name:     "input that is not an object",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Input: "-"},
			stdin:    `[1, 2]`,
			wantCode: 2,
			wantErr:  []string{"want a JSON object", "an array"},
		},
		{
			name:     "empty input",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Input: "-"},
			stdin:    " \n",
			wantCode: 2,
			wantErr:  []string{"input stdin: empty"},
		},
		{
			name:     "no input: input is undefined, as in opa eval",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: cmdHandoffQ},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(false, "caller_not_a_listed_bot")},
		},
		{
			name:     "-I reads the input from stdin",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: cmdHandoffQ, StdinInput: true},
			stdin:    botInput,
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot")},
		},
		{
			name:     "-I and --input",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Input: cmdBotInput, StdinInput: true},
			wantCode: 2,
			wantErr:  []string{"--stdin-input or --input but not both"},
		},
		{
			name:     "--config and -I both on stdin",
			opts:     cli.EvalOptions{Config: "-", StdinInput: true},
			wantCode: 2,
			wantErr:  []string{"cannot both read stdin"},
		},
	})
}

// TestPolicyEvalErrors: what keeps the policy from deciding is an error
// (exit 1), never a deny.
func TestPolicyEvalErrors(t *testing.T) {
	runEvalCases(t, []evalCase{
		{
			name:     "no policy source",
			opts:     cli.EvalOptions{Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"no policy: give --config"},
		},
		{
			name:     "Rego syntax error names file and line",
			opts:     cli.EvalOptions{Data: []string{"testdata/cmd/broken"}, Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"testdata/cmd/broken/broken.rego:6", "rego_parse_error"},
		},
		{
			name:     "query that does not parse",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: "data.resetguard.handoff.decision[", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"parsing query"},
		},
		{
			name:     "query calling a refused built-in",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: "x := rand.intn(\"a\", 10)", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"rand.intn", "never allowed"},
		},
		{
			name:     "evaluation error in a query that is not a decision query",
			opts:     cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: "to_number(input.request.method) > 0", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"eval_builtin_error", "to_number"},
		},
		{
			name:     "evaluation error (conflicting values) is an error, not a deny",
			opts:     cli.EvalOptions{Data: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: "-"},
			stdin:    `{"action": "chat_session.reset", "session_id": 13, "credential": {"username": "chatbot"}}`,
			wantCode: 2,
			wantErr:  []string{"evaluation 1 of 1", "data.resetguard.test.decision"},
		},
		{
			name:     "repeat below 1",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Repeat: -3},
			wantCode: 2,
			wantErr:  []string{"--repeat -3"},
		},
	})
}

// TestPolicyEvalOPAFlags: opa eval's flags with opa eval's meanings and
// exit codes (0 evaluated, whether allowed or denied; 1 a --fail*
// condition held; 2 an error), and queries the handler would not take as
// its decision query, evaluated as opa eval would.
func TestPolicyEvalOPAFlags(t *testing.T) {
	handoff := []string{cmdHandoffDir}
	runEvalCases(t, []evalCase{
		{
			name:     "a deny exits 0, as any evaluated query",
			opts:     cli.EvalOptions{Data: handoff, Query: cmdHandoffQ, Input: cmdDeniedInput},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantValue(`{"allow": false, "reasons": ["session_protected"]}`)},
		},
		{
			name:     "--fail on a defined deny: 0",
			opts:     cli.EvalOptions{Data: handoff, Query: cmdHandoffQ, Input: cmdDeniedInput, Fail: true},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantDecision(false, "session_protected")},
		},
		{
			name:     "--fail on an undefined result: 1, {} without result, the handler's deny beside it",
			opts:     cli.EvalOptions{Data: handoff, Query: "data.resetguard.handoff.no_such_rule", Input: cmdBotInput, Fail: true},
			wantCode: cli.ExitEvalFail,
			checks:   []evalCheck{wantUndefined(), wantDecision(false, "policy_result_invalid")},
		},
		{
			name:     "--fail-defined on a defined result: 1",
			opts:     cli.EvalOptions{Data: handoff, Query: cmdHandoffQ, Input: cmdBotInput, FailDefined: true},
			wantCode: cli.ExitEvalFail,
			checks:   []evalCheck{wantDecision(true, "listed_bot")},
		},
		{
			name:     "--fail-defined on an undefined result: 0",
			opts:     cli.EvalOptions{Data: handoff, Query: "data.resetguard.handoff.deny[_]", Input: cmdBotInput, FailDefined: true},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantUndefined(), wantNoDecision()},
		},
		{
			name:     "--fail and --fail-defined together",
			opts:     cli.EvalOptions{Data: handoff, Query: cmdHandoffQ, Input: cmdBotInput, Fail: true, FailDefined: true},
			wantCode: cli.ExitEvalError,
			wantErr:  []string{"--fail or --fail-defined but not both"},
		},
		{
			name:     "--fail-deny on a deny: 1",
			opts:     cli.EvalOptions{Data: handoff, Query: cmdHandoffQ, Input: cmdDeniedInput, FailDeny: true},
			wantCode: cli.ExitEvalFail,
			checks:   []evalCheck{wantDecision(false, "session_protected")},
		},
		{
			name:     "--fail-deny on an allow: 0",
			opts:     cli.EvalOptions{Data: handoff, Query: cmdHandoffQ, Input: cmdBotInput, FailDeny: true},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantDecision(true, "listed_bot")},
		},
		{
			name:     "--fail-deny on an invalid result: 1",
			opts:     cli.EvalOptions{Data: handoff, Query: "data.handoff.bots", Input: cmdBotInput, FailDeny: true},
			wantCode: cli.ExitEvalFail,
			checks:   []evalCheck{wantDecision(false, "policy_result_invalid")},
		},
		{
			name:     "--fail-deny with a query that is not a decision query",
			opts:     cli.EvalOptions{Data: handoff, Query: "x := data.resetguard.handoff.decision", Input: cmdBotInput, FailDeny: true},
			wantCode: cli.ExitEvalError,
			wantErr:  []string{"--fail-deny needs a decision query"},
		},
		{
			name:     "a query with a binding: opa eval's result, no decision",
			opts:     cli.EvalOptions{Data: handoff, Query: "x := data.resetguard.handoff.decision", Input: cmdBotInput},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantNoDecision(), wantBindings(`{"x": {"allow": true, "reasons": ["listed_bot"], "headers": {"X-ResetGuard-Bot": "onsite-chatbot"}}}`)},
		},
		{
			name:     "iteration: one result per binding",
			opts:     cli.EvalOptions{Data: handoff, Query: "name := data.handoff.bots[_].name"},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantNoDecision(), wantBindings(`{"name": "onsite-chatbot"}`, `{"name": "cust12345-bot"}`)},
		},
		{
			name:     "a comparison's value, as opa eval captures it",
			opts:     cli.EvalOptions{Data: handoff, Query: "data.resetguard.handoff.decision.allow == true", Input: cmdDeniedInput, Fail: true},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantNoDecision(), wantValue(`false`)},
		},
		{
			name:     "a package: a decision query, its object an invalid decision",
			opts:     cli.EvalOptions{Data: handoff, Query: "data.handoff", Input: cmdBotInput},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantDecision(false, "policy_result_invalid"), wantValue(`{"bots": [{"name": "onsite-chatbot", "username": "chatbot", "tenant": ""}, {"name": "cust12345-bot", "username": "cust12345-bot", "subject": "bot@cust12345", "tenant": "Cust12345"}], "protected_sessions": [1]}`)},
		},
		{
			name:     "the examples' parent folder: the same data paths as the example's own",
			opts:     cli.EvalOptions{Data: []string{"testdata/policies"}, Query: cmdHandoffQ, Input: cmdDeniedInput},
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantDecision(false, "session_protected")},
		},
		{
			name:     "decision headers keep the policy's spelling",
			opts:     cli.EvalOptions{Data: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: "-"},
			stdin:    `{"action": "chat_session.reset", "session_id": 5, "credential": {"username": "mallory"}}`,
			wantCode: cli.ExitOK,
			checks:   []evalCheck{wantDecision(false, "mallory_refused"), wantHeader("X-Denied-By", "policy"), wantStatus(403)},
		},
		{
			name:     "--timeout replaces the config's policy timeout",
			opts:     cli.EvalOptions{Config: slowPolicyConfig(t), Input: cmdBotInput, Timeout: 20 * time.Millisecond},
			wantCode: cli.ExitEvalError,
			wantErr:  []string{"context deadline exceeded", "503 (policy_error)"},
		},
		{
			name:     "--timeout on a query that is not a decision query",
			opts:     cli.EvalOptions{Config: slowPolicyConfig(t), Query: "x := data.resetguard.cmdslow.decision", Input: cmdBotInput, Timeout: 20 * time.Millisecond},
			wantCode: cli.ExitEvalError,
			wantErr:  []string{"context deadline exceeded"},
		},
		{
			name:     "negative --timeout",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Timeout: -time.Second},
			wantCode: cli.ExitEvalError,
			wantErr:  []string{"--timeout"},
		},
		{
			name:     "unknown format",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Format: "values"},
			wantCode: cli.ExitEvalError,
			wantErr:  []string{`--format "values"`},
		},
	})
}

// slowPolicyConfig is a JSON config whose policy takes seconds to decide,
// under a policy timeout of a minute.
func slowPolicyConfig(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(cmdWriteFile(t, "slow.rego", `package resetguard.cmdslow

decision := {"allow": s > 0} if {
	s := sum([z | some x in numbers.range(1, 3000); some y in numbers.range(1, 3000); z := x * y])
}
`))
	return strictConfig(t, `{"paths": ["`+dir+`"], "query": "data.resetguard.cmdslow.decision", "timeout": "1m"}`)
}

// TestPolicyEvalPretty: --format pretty prints the decision (for a
// decision query), the query, the revision, the timings and the value for
// a reader.
func TestPolicyEvalPretty(t *testing.T) {
	tests := []struct {
		name     string
		opts     cli.EvalOptions
		code     int
		decision bool // decision lines expected
		want     []string
	}{
		{"allow", cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput}, cli.ExitOK, true, []string{
			"decision:  allow\n", "reasons:   listed_bot\n", "headers:   X-ResetGuard-Bot: onsite-chatbot\n",
			"query:     " + cmdHandoffQ + "\n", "revision:  sha256:", "eval:      ", "result:    \n{\n  \"allow\": true,"}},
		{"deny with the policy's status", cli.EvalOptions{Data: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: "-"}, cli.ExitOK, true, []string{
			"decision:  deny (423)\n", "reasons:   session_locked\n", "headers:   -\n"}},
		{"deny, default status; repeated", cli.EvalOptions{Config: "Caddyfile.example", Input: cmdDeniedInput, Repeat: 3}, cli.ExitOK, true, []string{
			"decision:  deny (403)\n", "(2 evaluations after a warm-up)"}},
		{"undefined, --fail", cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: "data.resetguard.handoff.deny[_]", Input: cmdBotInput, Fail: true}, cli.ExitEvalFail, false, []string{
			"result:    undefined\n"}},
		{"bindings", cli.EvalOptions{Data: []string{cmdHandoffDir}, Query: "name := data.handoff.bots[0].name"}, cli.ExitOK, false, []string{
			"query:     name := data.handoff.bots[0].name\n", `"bindings": {`, `"name": "onsite-chatbot"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Format = "pretty"
			if tt.opts.Repeat == 0 {
				tt.opts.Repeat = 1
			}
			var stdout, stderr bytes.Buffer
			code, err := cli.RunPolicyEval(context.Background(), tt.opts, strings.NewReader(`{"session_id": 666}`), &stdout, &stderr)
			if code != tt.code || err != nil {
				t.Fatalf("exit code %d, error %v; want %d", code, err, tt.code)
			}
			out := stdout.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if got := strings.HasPrefix(out, "decision:"); got != tt.decision {
				t.Errorf("decision lines: %v, want %v:\n%s", got, tt.decision, out)
			}
		})
	}
}

// evalCheck checks one thing of a `policy eval` report.
type evalCheck func(t *testing.T, rep map[string]any)

func wantDecision(allow bool, reasons ...string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		d, ok := rep["decision"].(map[string]any)
		if !ok {
			t.Fatalf("no decision in %v", rep)
		}
		if d["allow"] != allow {
			t.Errorf("decision.allow = %v, want %v", d["allow"], allow)
		}
		got := []string{}
		for _, r := range d["reasons"].([]any) {
			got = append(got, r.(string))
		}
		if !reflect.DeepEqual(got, reasons) {
			t.Errorf("decision.reasons = %v, want %v", got, reasons)
		}
	}
}

func wantNoDecision() evalCheck {
	return func(t *testing.T, rep map[string]any) {
		if d, ok := rep["decision"]; ok {
			t.Errorf("decision %v for a query that is not a decision query", d)
		}
	}
}

func wantStatus(status int) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		if got := rep["decision"].(map[string]any)["status"]; got != float64(status) {
			t.Errorf("decision.status = %v, want %d", got, status)
		}
	}
}

func wantQuery(q string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		if rep["query"] != q {
			t.Errorf("query = %v, want %s", rep["query"], q)
		}
	}
}

// wantHeader checks a decision header under exactly the name given: the
// policy's spelling, not Go's canonical form.
func wantHeader(name, value string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		h := rep["decision"].(map[string]any)["headers"].(map[string]any)
		if vs, _ := h[name].([]any); len(vs) != 1 || vs[0] != value {
			t.Errorf("decision.headers[%s] = %v, want [%s] (all: %v)", name, h[name], value, h)
		}
	}
}

func wantEvaluations(n int) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		if got := rep["evaluations"].(float64); got != float64(n) {
			t.Errorf("evaluations = %v, want %d", got, n)
		}
	}
}

// wantUndefined: no "result", as opa eval prints {} for an undefined
// query.
func wantUndefined() evalCheck {
	return func(t *testing.T, rep map[string]any) {
		if r, ok := rep["result"]; ok {
			t.Errorf("result = %v, want none (undefined)", r)
		}
	}
}

// wantValue checks the value of the one expression of the one result, as
// opa eval gives it (result[0].expressions[0].value).
func wantValue(want string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		rs, _ := rep["result"].([]any)
		if len(rs) != 1 {
			t.Fatalf("result = %v, want one", rep["result"])
		}
		exprs := rs[0].(map[string]any)["expressions"].([]any)
		if len(exprs) != 1 {
			t.Fatalf("expressions = %v, want one", exprs)
		}
		if got := exprs[0].(map[string]any)["value"]; !reflect.DeepEqual(got, cmdJSON(t, want)) {
			t.Errorf("value = %v, want %s", got, want)
		}
	}
}

// wantBindings checks the bindings of each result, in order.
func wantBindings(want ...string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		rs, _ := rep["result"].([]any)
		if len(rs) != len(want) {
			t.Fatalf("%d results, want %d: %v", len(rs), len(want), rs)
		}
		for i, r := range rs {
			if got := r.(map[string]any)["bindings"]; !reflect.DeepEqual(got, cmdJSON(t, want[i])) {
				t.Errorf("result %d: bindings %v, want %s", i, got, want[i])
			}
		}
	}
}

func cmdJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

// evalCase is one `policy eval` run and what it must give.
type evalCase struct {
	name     string
	opts     cli.EvalOptions
	stdin    string
	wantCode int
	wantErr  []string // substrings of the error, for cli.ExitEvalError
	checks   []evalCheck
	// wantStderr: substring of stderr, which must otherwise be empty.
	wantStderr string
}

// runEvalCases runs each case as a subtest: the exit code, then the error
// or the report's shape, stderr and the case's checks.
func runEvalCases(t *testing.T, cases []evalCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Repeat == 0 {
				tt.opts.Repeat = 1
			}
			var stdout, stderr bytes.Buffer
			code, err := cli.RunPolicyEval(context.Background(), tt.opts, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit code = %d (err %v), want %d; stdout:\n%s", code, err, tt.wantCode, stdout.String())
			}
			if tt.wantCode == cli.ExitEvalError {
				if err == nil {
					t.Fatalf("exit code %d without an error", code)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if stdout.Len() != 0 {
					t.Errorf("stdout on error: %s", stdout.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error with exit code %d: %v", code, err)
			}
			if tt.wantStderr == "" && stderr.Len() != 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
			rep := cmdCheckEvalReport(t, stdout.Bytes())
			for _, c := range tt.checks {
				c(t, rep)
			}
		})
	}
}

// cmdCheckEvalReport checks the shape of `policy eval` output (opa eval's
// "result" when defined, the gateway's view beside it) and returns it
// decoded.
func cmdCheckEvalReport(t *testing.T, out []byte) map[string]any {
	t.Helper()
	var rep map[string]any
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	want := []string{"eval_ns", "evaluations", "policy_revision", "query"}
	if _, ok := rep["result"]; ok {
		want = append(want, "result")
	}
	if _, ok := rep["decision"]; ok {
		want = append(want, "decision")
	}
	slices.Sort(want)
	if got := keys(rep); !reflect.DeepEqual(got, want) {
		t.Errorf("top-level keys = %v, want %v", got, want)
	}
	if rs, ok := rep["result"].([]any); ok {
		// opa eval's shape: each result's expressions, their text the query.
		for _, r := range rs {
			exprs, _ := r.(map[string]any)["expressions"].([]any)
			if len(exprs) == 0 {
				t.Errorf("result without expressions: %v", r)
			}
			for _, e := range exprs {
				if e.(map[string]any)["text"] != rep["query"] {
					t.Errorf("expression text %v, want the query %v", e.(map[string]any)["text"], rep["query"])
				}
			}
		}
	}
	if d, ok := rep["decision"].(map[string]any); ok {
		if got, want := keys(d), []string{"allow", "headers", "reasons", "status"}; !reflect.DeepEqual(got, want) {
			t.Errorf("decision keys = %v, want %v", got, want)
		}
		if _, ok := d["reasons"].([]any); !ok {
			t.Errorf("decision.reasons = %#v, want an array", d["reasons"])
		}
		if _, ok := d["headers"].(map[string]any); !ok {
			t.Errorf("decision.headers = %#v, want an object", d["headers"])
		}
	}
	if rev, _ := rep["policy_revision"].(string); !regexp.MustCompile(`^sha256:[0-9a-f]{16}$`).MatchString(rev) {
		t.Errorf("policy_revision = %q", rev)
	}
	ns, _ := rep["eval_ns"].(map[string]any)
	if got, want := keys(ns), []string{"max", "median", "min", "p99"}; !reflect.DeepEqual(got, want) {
		t.Errorf("eval_ns keys = %v, want %v", got, want)
	}
	lo, med, p99, hi := ns["min"].(float64), ns["median"].(float64), ns["p99"].(float64), ns["max"].(float64)
	if !(0 < lo && lo <= med && med <= p99 && p99 <= hi) {
		t.Errorf("eval_ns not ordered: %v", ns)
	}
	return rep
}

func TestPolicyEvalTimings(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n))
		}
		return ds
	}
	tests := []struct {
		in   []time.Duration
		want cli.EvalTimings
	}{
		{ms(7), cli.EvalTimings{7, 7, 7, 7}},
		{ms(4, 1, 3, 2), cli.EvalTimings{1, 2, 4, 4}},
		{ms(5, 1, 3), cli.EvalTimings{1, 3, 5, 5}},
		// 200 samples: p99 is the 198th smallest.
		{func() []time.Duration {
			var ds []time.Duration
			for i := 200; i >= 1; i-- {
				ds = append(ds, time.Duration(i))
			}
			return ds
		}(), cli.EvalTimings{1, 100, 198, 200}},
		{nil, cli.EvalTimings{}},
	}
	for _, tt := range tests {
		if got := cli.Timings(tt.in); got != tt.want {
			t.Errorf("timings(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
