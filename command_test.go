package resetguard

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	// The bundled Caddyfile.example uses reverse_proxy, respond, header
	// and handle: the Caddyfile adapter needs the standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const (
	cmdBotInput    = "testdata/cmd/bot.json"
	cmdDeniedInput = "testdata/cmd/denied.json"
	cmdTwoSites    = "testdata/cmd/Caddyfile.two"
	cmdHandoffDir  = "testdata/policies/handoff"
	cmdHandoffQ    = "data.resetguard.handoff.decision"
)

func TestPolicyCommandRegistered(t *testing.T) {
	c, ok := caddycmd.Commands()["policy"]
	if !ok {
		t.Fatal(`the "policy" command is not registered with caddycmd`)
	}
	if c.CobraFunc == nil || c.Short == "" {
		t.Fatalf("policy command incomplete: %+v", c)
	}
	cmd := &cobra.Command{Use: "policy"}
	c.CobraFunc(cmd)
	var names []string
	for _, sub := range cmd.Commands() {
		names = append(names, sub.Name())
	}
	slices.Sort(names)
	if !reflect.DeepEqual(names, []string{"eval", "test"}) {
		t.Errorf("policy subcommands = %v, want [eval test]", names)
	}
}

func cmdPick(n int) *int { return &n }

// cmdWriteFile writes a fixture into a fresh temporary directory.
func cmdWriteFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func cmdReadFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPolicyEvalCommand(t *testing.T) {
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
	botInput := cmdReadFile(t, cmdBotInput)

	type check func(t *testing.T, rep map[string]any)
	decision := func(allow bool, reasons ...string) check {
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
	query := func(q string) check {
		return func(t *testing.T, rep map[string]any) {
			if rep["query"] != q {
				t.Errorf("query = %v, want %s", rep["query"], q)
			}
		}
	}
	header := func(name, value string) check {
		return func(t *testing.T, rep map[string]any) {
			h := rep["decision"].(map[string]any)["headers"].(map[string]any)
			if vs, _ := h[name].([]any); len(vs) != 1 || vs[0] != value {
				t.Errorf("decision.headers[%s] = %v, want [%s]", name, h[name], value)
			}
		}
	}
	evaluations := func(n int) check {
		return func(t *testing.T, rep map[string]any) {
			if got := rep["evaluations"].(float64); got != float64(n) {
				t.Errorf("evaluations = %v, want %d", got, n)
			}
		}
	}

	tests := []struct {
		name     string
		opts     evalOptions
		stdin    string
		wantCode int
		wantErr  []string // substrings of the error, for code 1
		checks   []check
		// wantStderr: substring of stderr, which must otherwise be empty.
		wantStderr string
	}{
		{
			name:     "bundled example allows the listed bot",
			opts:     evalOptions{Config: "Caddyfile.example", Input: cmdBotInput},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot"), query(cmdHandoffQ), header("X-Resetguard-Bot", "onsite-chatbot"), evaluations(1)},
		},
		{
			name:     "bundled example denies a protected session",
			opts:     evalOptions{Config: "Caddyfile.example", Input: cmdDeniedInput},
			wantCode: 2,
			checks:   []check{decision(false, "session_protected"), query(cmdHandoffQ)},
		},
		{
			name:     "policy and query flags without a config",
			opts:     evalOptions{Policies: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdBotInput},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot"), query(cmdHandoffQ)},
		},
		{
			name:     "default query undefined in the handoff policy is an invalid result, denied",
			opts:     evalOptions{Policies: []string{cmdHandoffDir}, Input: cmdBotInput},
			wantCode: 2,
			checks:   []check{decision(false, "policy_result_invalid"), query("data.resetguard.allow")},
		},
		{
			name:     "query flag overrides the config's",
			opts:     evalOptions{Config: "Caddyfile.example", Query: "data.resetguard.handoff.no_such_rule", Input: cmdBotInput},
			wantCode: 2,
			checks:   []check{decision(false, "policy_result_invalid"), query("data.resetguard.handoff.no_such_rule")},
		},
		{
			name:     "policy and query flags override the picked handler's",
			opts:     evalOptions{Config: cmdTwoSites, Handler: cmdPick(0), Policies: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []check{decision(true, "ok"), query("data.resetguard.test.decision")},
		},
		{
			name:     "two handlers without --handler",
			opts:     evalOptions{Config: cmdTwoSites, Input: cmdBotInput},
			wantCode: 1,
			wantErr: []string{"found 2 reset_guard handlers in " + cmdTwoSites, "--handler N",
				"0: apps.http.servers.srv0.routes[0].handle[0] (policy testdata/policies/handoff, query " + cmdHandoffQ + ")",
				"1: apps.http.servers.srv1.routes[0].handle[0] (policy testdata/caddy, query data.resetguard.test.decision)"},
		},
		{
			name:     "--handler 0 picks the handoff site",
			opts:     evalOptions{Config: cmdTwoSites, Handler: cmdPick(0), Input: cmdDeniedInput},
			wantCode: 2,
			checks:   []check{decision(false, "session_protected"), query(cmdHandoffQ)},
		},
		{
			name:     "--handler 1 picks the second site",
			opts:     evalOptions{Config: cmdTwoSites, Handler: cmdPick(1), Input: cmdDeniedInput},
			wantCode: 0,
			checks:   []check{decision(true, "ok"), query("data.resetguard.test.decision"), header("X-Resetguard-Decision", "allow")},
		},
		{
			name:     "--handler out of range",
			opts:     evalOptions{Config: cmdTwoSites, Handler: cmdPick(2), Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"--handler 2", "has 2 reset_guard handler(s)"},
		},
		{
			name:     "JSON config, guard nested in a subroute",
			opts:     evalOptions{Config: jsonConfig, Input: cmdBotInput},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot"), query(cmdHandoffQ)},
		},
		{
			name:     "local bundle from the config",
			opts:     evalOptions{Config: bundleOnly, Input: cmdBotInput},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot"), query(cmdHandoffQ)},
		},
		{
			name:     "--bundle flag replaces the config's local sources",
			opts:     evalOptions{Config: cmdTwoSites, Handler: cmdPick(1), Bundles: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdDeniedInput},
			wantCode: 2,
			checks:   []check{decision(false, "session_protected"), query(cmdHandoffQ)},
		},
		{
			name:     "remote bundle only: nothing local to evaluate",
			opts:     evalOptions{Config: remoteOnly, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"remote bundle service http://127.0.0.1:9", "give --policy or --bundle"},
		},
		{
			name:     "remote bundle only, with --policy",
			opts:     evalOptions{Config: remoteOnly, Policies: []string{cmdHandoffDir}, Query: cmdHandoffQ, Input: cmdBotInput},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot")},
		},
		{
			name:       "remote bundle next to local paths: local only, with a warning",
			opts:       evalOptions{Config: remoteAndLocal, Input: cmdBotInput},
			wantCode:   0,
			checks:     []check{decision(true, "listed_bot")},
			wantStderr: "evaluating its local sources only",
		},
		{
			name:     "explicit adapter",
			opts:     evalOptions{Config: "Caddyfile.example", Adapter: "caddyfile", Input: cmdBotInput},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot")},
		},
		{
			name:     "unknown adapter",
			opts:     evalOptions{Config: "Caddyfile.example", Adapter: "nginx", Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"unrecognized config adapter: nginx"},
		},
		{
			name:     "config without a reset_guard",
			opts:     evalOptions{Config: noGuard, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"no reset_guard handler in"},
		},
		{
			name:     "misspelt handler option is refused as Caddy would",
			opts:     evalOptions{Config: misspelt, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"reset_guard handler at (top level)", "polcy"},
		},
		{
			name:     "missing config file",
			opts:     evalOptions{Config: "testdata/cmd/no-such-Caddyfile", Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"reading config", "no-such-Caddyfile"},
		},
		{
			name:     "input from stdin",
			opts:     evalOptions{Config: "Caddyfile.example", Input: "-"},
			stdin:    botInput,
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot")},
		},
		{
			name:     "missing input file",
			opts:     evalOptions{Config: "Caddyfile.example", Input: "testdata/cmd/no-such-input.json"},
			wantCode: 1,
			wantErr:  []string{"reading input", "no-such-input.json"},
		},
		{
			name:     "malformed input JSON",
			opts:     evalOptions{Config: "Caddyfile.example", Input: "testdata/cmd/malformed.json"},
			wantCode: 1,
			wantErr:  []string{"input testdata/cmd/malformed.json: not valid JSON"},
		},
		{
			name:     "trailing data after the input object",
			opts:     evalOptions{Config: "Caddyfile.example", Input: "-"},
			stdin:    botInput + `{"x": 1}`,
			wantCode: 1,
			wantErr:  []string{"input stdin: not valid JSON"},
		},
		{
			name:     "input that is not an object",
			opts:     evalOptions{Policies: []string{cmdHandoffDir}, Input: "-"},
			stdin:    `[1, 2]`,
			wantCode: 1,
			wantErr:  []string{"want a JSON object", "an array"},
		},
		{
			name:     "empty input",
			opts:     evalOptions{Policies: []string{cmdHandoffDir}, Input: "-"},
			stdin:    " \n",
			wantCode: 1,
			wantErr:  []string{"input stdin: empty"},
		},
		{
			name:     "no input flag",
			opts:     evalOptions{Policies: []string{cmdHandoffDir}},
			wantCode: 1,
			wantErr:  []string{"--input is required"},
		},
		{
			name:     "no policy source",
			opts:     evalOptions{Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"no policy: give --config"},
		},
		{
			name:     "negative --handler",
			opts:     evalOptions{Config: cmdTwoSites, Handler: cmdPick(-1), Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"--handler -1: must be 0 or more"},
		},
		{
			name:     "--handler without --config",
			opts:     evalOptions{Handler: cmdPick(1), Policies: []string{cmdHandoffDir}, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"need --config"},
		},
		{
			name:     "Rego syntax error names file and line",
			opts:     evalOptions{Policies: []string{"testdata/cmd/broken"}, Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"testdata/cmd/broken/broken.rego:6", "rego_parse_error"},
		},
		{
			name:     "query that is not a plain data reference",
			opts:     evalOptions{Policies: []string{cmdHandoffDir}, Query: "x := data.resetguard.handoff.decision", Input: cmdBotInput},
			wantCode: 1,
			wantErr:  []string{"must be a plain reference into data"},
		},
		{
			name:     "evaluation error (conflicting values) is an error, not a deny",
			opts:     evalOptions{Policies: []string{"testdata/caddy"}, Query: "data.resetguard.test.decision", Input: "-"},
			stdin:    `{"action": "chat_session.reset", "session_id": 13, "credential": {"username": "chatbot"}}`,
			wantCode: 1,
			wantErr:  []string{"evaluation 1 of 1", "data.resetguard.test.decision"},
		},
		{
			name:     "repeat: the first evaluation is a warm-up",
			opts:     evalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Repeat: 5},
			wantCode: 0,
			checks:   []check{decision(true, "listed_bot"), evaluations(4)},
		},
		{
			name:     "repeat below 1",
			opts:     evalOptions{Config: "Caddyfile.example", Input: cmdBotInput, Repeat: -3},
			wantCode: 1,
			wantErr:  []string{"--repeat -3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.Repeat == 0 {
				tt.opts.Repeat = 1
			}
			var stdout, stderr bytes.Buffer
			code, err := runPolicyEval(context.Background(), tt.opts, strings.NewReader(tt.stdin), &stdout, &stderr)
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
		want evalTimings
	}{
		{ms(7), evalTimings{7, 7, 7, 7}},
		{ms(4, 1, 3, 2), evalTimings{1, 2, 4, 4}},
		{ms(5, 1, 3), evalTimings{1, 3, 5, 5}},
		// 200 samples: p99 is the 198th smallest.
		{func() []time.Duration {
			var ds []time.Duration
			for i := 200; i >= 1; i-- {
				ds = append(ds, time.Duration(i))
			}
			return ds
		}(), evalTimings{1, 100, 198, 200}},
		{nil, evalTimings{}},
	}
	for _, tt := range tests {
		if got := timings(tt.in); got != tt.want {
			t.Errorf("timings(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

var cmdSummary = regexp.MustCompile(`^(PASS|FAIL): (\d+)/(\d+)( \(.*\))?$`)

// cmdLines splits output into lines and parses the summary, the last one.
func cmdLines(t *testing.T, out string) (lines []string, verdict string, n, total int) {
	t.Helper()
	lines = strings.Split(strings.TrimRight(out, "\n"), "\n")
	m := cmdSummary.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("last line is not a summary:\n%s", out)
	}
	n, _ = strconv.Atoi(m[2])
	total, _ = strconv.Atoi(m[3])
	return lines[:len(lines)-1], m[1], n, total
}

func TestPolicyTestCommand(t *testing.T) {
	// A test that errors (a built-in error) and one to skip.
	erroring := filepath.Dir(cmdWriteFile(t, "err_test.rego", `package resetguard.cmderr_test

test_bad_number if to_number("not a number") == 1

todo_test_later if false

test_fine if true
`))

	tests := []struct {
		name     string
		opts     testOptions
		wantCode int
		wantErr  []string
		// For codes 0 and 2:
		verdict   string   // PASS or FAIL
		wantN     int      // n of "n/total"; -1: n == total > 0
		wantTotal int      // 0: any > 0
		want      []string // substrings of the output
		notWant   []string
	}{
		{
			name:     "handoff policy passes",
			opts:     testOptions{Paths: []string{cmdHandoffDir}},
			wantCode: 0, verdict: "PASS", wantN: -1,
			notWant: []string{"PASS  data."},
		},
		{
			name:     "handoff policy passes, verbose",
			opts:     testOptions{Paths: []string{cmdHandoffDir}, Verbose: true},
			wantCode: 0, verdict: "PASS", wantN: -1,
			want: []string{"PASS  data.resetguard.handoff_test.test_listed_onsite_bot_may_hand_off  testdata/policies/handoff/handoff_test.rego:"},
		},
		{
			name:     "--run filter",
			opts:     testOptions{Paths: []string{cmdHandoffDir}, Run: `protected_session`, Verbose: true},
			wantCode: 0, verdict: "PASS", wantN: 1, wantTotal: 1,
			want: []string{"test_protected_session_is_never_reset"},
		},
		{
			name:     "a failing test",
			opts:     testOptions{Paths: []string{"testdata/cmd/failing"}},
			wantCode: 2, verdict: "FAIL", wantN: 1, wantTotal: 2,
			want: []string{
				"FAIL  data.resetguard.cmdfailing_test.test_agent_is_allowed_fails  testdata/cmd/failing/policy_test.rego:10  (",
				"failed at testdata/cmd/failing/policy_test.rego:11: data.resetguard.cmdfailing.allow",
			},
			notWant: []string{"PASS  ", "test_chatbot_is_allowed"},
		},
		{
			name:     "a failing test, verbose",
			opts:     testOptions{Paths: []string{"testdata/cmd/failing"}, Verbose: true},
			wantCode: 2, verdict: "FAIL", wantN: 1, wantTotal: 2,
			want: []string{
				"PASS  data.resetguard.cmdfailing_test.test_chatbot_is_allowed  testdata/cmd/failing/policy_test.rego:5",
				"FAIL  data.resetguard.cmdfailing_test.test_agent_is_allowed_fails",
			},
		},
		{
			name:     "an erroring test and a skipped one",
			opts:     testOptions{Paths: []string{erroring}, Verbose: true},
			wantCode: 2, verdict: "FAIL", wantN: 1, wantTotal: 3,
			want: []string{
				"ERROR data.resetguard.cmderr_test.test_bad_number",
				"to_number",
				"SKIP  data.resetguard.cmderr_test.todo_test_later",
				"PASS  data.resetguard.cmderr_test.test_fine",
				"(1 errored, 1 skipped)",
			},
		},
		{
			name:     "Rego syntax error",
			opts:     testOptions{Paths: []string{"testdata/cmd/broken"}},
			wantCode: 1,
			wantErr:  []string{"testdata/cmd/broken/broken.rego:6", "rego_parse_error"},
		},
		{
			name:     "Rego type error",
			opts:     testOptions{Paths: []string{"testdata/policies/broken/typeerr.rego", cmdHandoffDir}},
			wantCode: 1,
			wantErr:  []string{"testdata/policies/broken/typeerr.rego:", "rego_type_error"},
		},
		{
			name:     "a directory without tests",
			opts:     testOptions{Paths: []string{"testdata/cmd/notests"}},
			wantCode: 1,
			wantErr:  []string{"no Rego tests found in testdata/cmd/notests"},
		},
		{
			name:     "a directory without tests next to one with tests",
			opts:     testOptions{Paths: []string{cmdHandoffDir, "testdata/cmd/notests"}},
			wantCode: 1,
			wantErr:  []string{"no Rego tests found in testdata/cmd/notests"},
		},
		{
			name:     "a policy file alone",
			opts:     testOptions{Paths: []string{"testdata/cmd/notests/policy.rego"}},
			wantCode: 1,
			wantErr:  []string{"no Rego tests found in testdata/cmd/notests/policy.rego"},
		},
		{
			name:     "--run matching nothing",
			opts:     testOptions{Paths: []string{cmdHandoffDir}, Run: "no_such_test"},
			wantCode: 1,
			wantErr:  []string{`no Rego tests found matching --run "no_such_test"`},
		},
		{
			name:     "bad --run regex",
			opts:     testOptions{Paths: []string{cmdHandoffDir}, Run: "test_("},
			wantCode: 1,
			wantErr:  []string{"--run"},
		},
		{
			name:     "missing path",
			opts:     testOptions{Paths: []string{"testdata/cmd/no-such-dir"}},
			wantCode: 1,
			wantErr:  []string{"no-such-dir"},
		},
		{
			name:     "no paths",
			opts:     testOptions{},
			wantCode: 1,
			wantErr:  []string{"no paths given"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			code, err := runPolicyTest(context.Background(), tt.opts, &stdout)
			if code != tt.wantCode {
				t.Fatalf("exit code = %d (err %v), want %d; output:\n%s", code, err, tt.wantCode, stdout.String())
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
				return
			}
			if err != nil {
				t.Fatalf("unexpected error with exit code %d: %v", code, err)
			}
			out := stdout.String()
			lines, verdict, n, total := cmdLines(t, out)
			if verdict != tt.verdict {
				t.Errorf("verdict %s, want %s:\n%s", verdict, tt.verdict, out)
			}
			if total == 0 || (tt.wantTotal != 0 && total != tt.wantTotal) {
				t.Errorf("total %d, want %d (> 0):\n%s", total, tt.wantTotal, out)
			}
			if (tt.wantN == -1 && n != total) || (tt.wantN >= 0 && n != tt.wantN) {
				t.Errorf("summary %s: %d/%d, want n %d:\n%s", verdict, n, total, tt.wantN, out)
			}
			if tt.opts.Verbose {
				// One line per test, in source order.
				var tests int
				for _, l := range lines {
					if regexp.MustCompile(`^(PASS |FAIL |ERROR|SKIP ) data\.\S+  \S+:\d+`).MatchString(l) {
						tests++
					}
				}
				if tests != total {
					t.Errorf("%d test lines for %d tests:\n%s", tests, total, out)
				}
			}
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("output does not contain %q:\n%s", s, out)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(out, s) {
					t.Errorf("output contains %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestPolicyCommandCobra runs the commands through their cobra wiring, as
// the binary does: flag names, positional paths and the exit statuses
// Caddy's wrapper turns into the process's.
func TestPolicyCommandCobra(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for exit status 0
		want    []string
	}{
		{
			name: "eval allowed",
			args: []string{"eval", "--config", "Caddyfile.example", "--input", cmdBotInput, "--repeat", "3"},
			want: []string{`"allow": true`, `"evaluations": 2`},
		},
		{
			name:    "eval denied exits 2",
			args:    []string{"eval", "-p", cmdHandoffDir, "-q", cmdHandoffQ, "-i", cmdDeniedInput},
			wantErr: "exiting with status 2",
			want:    []string{`"allow": false`, `"session_protected"`},
		},
		{
			name:    "eval --handler",
			args:    []string{"eval", "-c", cmdTwoSites, "--handler", "1", "-i", cmdDeniedInput},
			want:    []string{`"allow": true`, `"data.resetguard.test.decision"`},
			wantErr: "",
		},
		{
			name:    "eval error exits 1",
			args:    []string{"eval", "-c", cmdTwoSites, "-i", cmdBotInput},
			wantErr: "found 2 reset_guard handlers",
		},
		{
			name: "test verbose with paths as arguments",
			args: []string{"test", "-v", "--timeout", "30s", cmdHandoffDir},
			want: []string{"PASS  data.resetguard.handoff_test.", "PASS: "},
		},
		{
			name:    "test failing exits 2",
			args:    []string{"test", "--run", "agent", "testdata/cmd/failing"},
			wantErr: "exiting with status 2",
			want:    []string{"FAIL: 1/1"},
		},
		{
			name:    "test without paths",
			args:    []string{"test"},
			wantErr: "requires at least 1 arg",
		},
	}
	reg := caddycmd.Commands()["policy"]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := &cobra.Command{Use: "resetguard", SilenceUsage: true}
			policyCmd := &cobra.Command{Use: "policy", Short: reg.Short}
			reg.CobraFunc(policyCmd)
			root.AddCommand(policyCmd)
			var stdout, stderr bytes.Buffer
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			root.SetArgs(append([]string{"policy"}, tt.args...))
			err := root.Execute()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v; stdout:\n%s", err, stdout.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q; stdout:\n%s", err, tt.wantErr, stdout.String())
			}
			if strings.Contains(tt.wantErr, "status 2") && stderr.Len() != 0 {
				// A verdict is not an error: cobra must not add "Error: exiting with status 2".
				t.Errorf("stderr on a verdict: %s", stderr.String())
			}
			for _, s := range tt.want {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout does not contain %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}
