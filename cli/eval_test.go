package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
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
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantQuery(cmdHandoffQ), wantHeader("X-Resetguard-Bot", "onsite-chatbot"), wantEvaluations(1)},
		},
		{
			name:     "bundled example denies a protected session",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdDeniedInput},
			wantCode: 2,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "policy and query flags without a config",
			opts:     cli.EvalOptions{Policies: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "listed_bot"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "default query undefined in the handoff policy is an invalid result, denied",
			opts:     cli.EvalOptions{Policies: []string{cmdHandoffDir}, Input: cmdBotInput},
			wantCode: 2,
			checks:   []evalCheck{wantDecision(false, "policy_result_invalid"), wantQuery("data.resetguard.allow")},
		},
		{
			name:     "query flag overrides the config's",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Query: "data.resetguard.handoff.no_such_rule", Input: cmdBotInput},
			wantCode: 2,
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
			name:     "policy and query flags override the picked handler's",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(0), Policies: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "ok"), wantQuery("data.resetguard.test.decision")},
		},
		{
			name:     "two handlers without --handler",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Input: cmdBotInput},
			wantCode: 1,
			wantErr: []string{"found 2 reset_guard handlers in " + cmdTwoSites, "--handler N",
				"0: apps.http.servers.srv0.routes[0].handle[0] (policy testdata/policies/handoff, query " + cmdHandoffQ + ")",
				"1: apps.http.servers.srv1.routes[0].handle[0] (policy testdata/caddy, query data.resetguard.test.decision)"},
		},
		{
			name:     "--handler 0 picks the handoff site",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(0), Input: cmdDeniedInput},
			wantCode: 2,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "--handler 1 picks the second site",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(1), Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "ok"), wantQuery("data.resetguard.test.decision"), wantHeader("X-Resetguard-Decision", "allow")},
		},
		{
			name:     "--handler out of range",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(2), Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"--handler 2", "has 2 reset_guard handler(s)"},
		},
		{
			name:     "negative --handler",
			opts:     cli.EvalOptions{Config: cmdTwoSites, Handler: cmdPick(-1), Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"--handler -1: must be 0 or more"},
		},
		{
			name:     "--handler without --config",
			opts:     cli.EvalOptions{Handler: cmdPick(1), Policies: []string{cmdHandoffDir}, Input: cmdBotInput},
			wantCode: 1,
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
			wantCode: 2,
			checks:   []evalCheck{wantDecision(false, "session_protected"), wantQuery(cmdHandoffQ)},
		},
		{
			name:     "remote bundle only: nothing local to evaluate",
			opts:     cli.EvalOptions{Config: remoteOnly, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"remote bundle service http://127.0.0.1:9", "give --policy or --bundle"},
		},
		{
			name:     "remote bundle only, with --policy",
			opts:     cli.EvalOptions{Config: remoteOnly, Policies: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdBotInput},
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
			wantCode: 1,
			wantErr:  []string{"unrecognized config adapter: nginx"},
		},
		{
			name:     "config without a reset_guard",
			opts:     cli.EvalOptions{Config: noGuard, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"no reset_guard handler in"},
		},
		{
			name:     "misspelt handler option is refused as Caddy would",
			opts:     cli.EvalOptions{Config: misspelt, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"reset_guard handler at (top level)", "polcy"},
		},
		{
			name:     "missing config file",
			opts:     cli.EvalOptions{Config: "testdata/cmd/no-such-Caddyfile", Input: cmdBotInput},
			wantCode: 1,
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
			wantCode: 1,
			wantErr:  []string{"reading input", "no-such-input.json"},
		},
		{
			name:     "malformed input JSON",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: "testdata/cmd/malformed.json"},
			wantCode: 1,
			wantErr:  []string{"input testdata/cmd/malformed.json: not valid JSON"},
		},
		{
			name:     "trailing data after the input object",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: "-"},
			stdin:    botInput + `{"x": 1}`,
			wantCode: 1,
			wantErr:  []string{"input stdin: not valid JSON"},
		},
		{
			name:     "input that is not an object",
			opts:     cli.EvalOptions{Policies: []string{cmdHandoffDir}, Input: "-"},
			stdin:    `[1, 2]`,
			wantCode: 1,
			wantErr:  []string{"want a JSON object", "an array"},
		},
		{
			name:     "empty input",
			opts:     cli.EvalOptions{Policies: []string{cmdHandoffDir}, Input: "-"},
			stdin:    " \n",
			wantCode: 1,
			wantErr:  []string{"input stdin: empty"},
		},
		{
			name:     "no input flag",
			opts:     cli.EvalOptions{Policies: []string{cmdHandoffDir}},
			wantCode: 1,
			wantErr:  []string{"--input is required"},
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
			wantCode: 1,
			wantErr:  []string{"no policy: give --config"},
		},
		{
			name:     "Rego syntax error names file and line",
			opts:     cli.EvalOptions{Policies: []string{"testdata/cmd/broken"}, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"testdata/cmd/broken/broken.rego:6", "rego_parse_error"},
		},
		{
			name:     "query that is not a plain data reference",
			opts:     cli.EvalOptions{Policies: []string{cmdHandoffDir}, Query: "x := data.resetguard.handoff.decision", Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"must be a plain reference into data"},
		},
		{
			name:     "evaluation error (conflicting values) is an error, not a deny",
			opts:     cli.EvalOptions{Policies: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: "-"},
			stdin:    `{"action": "chat_session.reset", "session_id": 13, "credential": {"username": "chatbot"}}`,
			wantCode: 1,
			wantErr:  []string{"evaluation 1 of 1", "data.resetguard.test.decision"},
		},
		{
			name:     "repeat below 1",
			opts:     cli.EvalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Repeat: -3},
			wantCode: 1,
			wantErr:  []string{"--repeat -3"},
		},
	})
}

// evalCheck checks one thing of a `policy eval` report.
type evalCheck func(t *testing.T, rep map[string]any)

func wantDecision(allow bool, reasons ...string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		d := rep["decision"].(map[string]any)
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

func wantQuery(q string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		if rep["query"] != q {
			t.Errorf("query = %v, want %s", rep["query"], q)
		}
	}
}

func wantHeader(name, value string) evalCheck {
	return func(t *testing.T, rep map[string]any) {
		h := rep["decision"].(map[string]any)["headers"].(map[string]any)
		if vs, _ := h[name].([]any); len(vs) != 1 || vs[0] != value {
			t.Errorf("decision.headers[%s] = %v, want [%s]", name, h[name], value)
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

// evalCase is one `policy eval` run and what it must give.
type evalCase struct {
	name     string
	opts     cli.EvalOptions
	stdin    string
	wantCode int
	wantErr  []string // substrings of the error, for code 1
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
			if tt.wantCode == 1 {
				if err == nil {
					t.Fatal("exit code 1 without an error")
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

// cmdCheckEvalReport checks the shape of `policy eval` output and returns
// it decoded.
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
	if got, want := keys(rep), []string{"decision", "eval_ns", "evaluations", "policy_revision", "query"}; !reflect.DeepEqual(got, want) {
		t.Errorf("top-level keys = %v, want %v", got, want)
	}
	d, _ := rep["decision"].(map[string]any)
	if got, want := keys(d), []string{"allow", "headers", "reasons", "status"}; !reflect.DeepEqual(got, want) {
		t.Errorf("decision keys = %v, want %v", got, want)
	}
	if _, ok := d["reasons"].([]any); !ok {
		t.Errorf("decision.reasons = %#v, want an array", d["reasons"])
	}
	if _, ok := d["headers"].(map[string]any); !ok {
		t.Errorf("decision.headers = %#v, want an object", d["headers"])
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
