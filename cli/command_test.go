package cli_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// TestCommandRegistered pins the command's public shape: one Caddy
// command named after the module, with the tools as its subcommands. Caddy
// panics at start-up when two plugins register one name, so the generic
// top-level "policy" and "audit" the module used to register must stay
// gone.
func TestCommandRegistered(t *testing.T) {
	cmds := caddycmd.Commands()
	c, ok := cmds["reset-guard"]
	if !ok {
		t.Fatal(`the "reset-guard" command is not registered with caddycmd`)
	}
	if c.Name != "reset-guard" || c.CobraFunc == nil || c.Short == "" || c.Long == "" {
		t.Fatalf("reset-guard command incomplete: %+v", c)
	}
	for _, name := range []string{"policy", "audit"} {
		if _, ok := cmds[name]; ok {
			t.Errorf("a top-level %q command is registered; the tools belong under reset-guard", name)
		}
	}
	cmd := &cobra.Command{Use: c.Name}
	c.CobraFunc(cmd)
	var paths []string
	for _, group := range cmd.Commands() {
		if group.Runnable() {
			t.Errorf("%s runs on its own; want it to only group subcommands", group.CommandPath())
		}
		for _, sub := range group.Commands() {
			if !sub.Runnable() {
				t.Errorf("%s does not run", sub.CommandPath())
			}
			paths = append(paths, sub.CommandPath())
		}
	}
	slices.Sort(paths)
	want := []string{"reset-guard audit verify", "reset-guard policy eval", "reset-guard policy test"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("subcommands = %q, want %q", paths, want)
	}
}

// exitCode is the process exit status Caddy's main gives err: an exit
// error's own (Caddy's type is unexported: its ExitCode field is read by
// name), 1 for any other error, 0 for none.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if v := reflect.ValueOf(err); v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("ExitCode"); f.IsValid() && f.CanInt() {
			return int(f.Int())
		}
	}
	return 1
}

// TestPolicyCommandCobra runs the commands through their cobra wiring, as
// the binary does: OPA's flag names, positional query and paths, and the
// process exit statuses, opa eval's and opa test's.
func TestPolicyCommandCobra(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		stdin   string
		code    int
		want    []string // in stdout
		wantErr string   // in the error, for a code with an error
	}{
		// policy eval: 0 evaluated, 1 a --fail* condition, 2 an error.
		{name: "eval allowed", code: 0,
			args: []string{"eval", "--config", "Caddyfile.example", "--input", cmdBotInput, "--repeat", "3"},
			want: []string{`"allow": true`, `"evaluations": 2`, `"X-ResetGuard-Bot": [`}},
		{name: "eval denied exits 0, as opa eval", code: 0,
			args: []string{"eval", "-d", cmdHandoffDir, "-i", cmdDeniedInput, cmdHandoffQ},
			want: []string{`"allow": false`, `"session_protected"`, `"result": [`}},
		{name: "eval --fail on a deny: defined, 0", code: 0,
			args: []string{"eval", "-d", cmdHandoffDir, "-i", cmdDeniedInput, "--fail", cmdHandoffQ}},
		{name: "eval --fail on an undefined result: 1, silently", code: 1,
			args: []string{"eval", "-d", cmdHandoffDir, "-i", cmdDeniedInput, "--fail", "data.resetguard.handoff.none"},
			want: []string{`"policy_result_invalid"`}},
		{name: "eval --fail-defined: 1", code: 1,
			args: []string{"eval", "-d", cmdHandoffDir, "--fail-defined", "data.handoff.bots[_].name"},
			want: []string{`"onsite-chatbot"`}},
		{name: "eval --fail-deny on a deny: 1", code: 1,
			args: []string{"eval", "-c", "Caddyfile.example", "-i", cmdDeniedInput, "--fail-deny"}},
		{name: "eval --fail-deny on an allow: 0", code: 0,
			args: []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "--fail-deny"}},
		{name: "eval -f pretty", code: 0,
			args: []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "-f", "pretty"},
			want: []string{"decision:  allow\n", "headers:   X-ResetGuard-Bot: onsite-chatbot\n"}},
		{name: "eval --format json", code: 0,
			args: []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "--format", "json"},
			want: []string{`"result": [`}},
		{name: "eval -f values: not one of ours", code: 1,
			args:    []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "-f", "values"},
			wantErr: "must be one of"},
		{name: "eval -I reads the input from stdin", code: 0,
			args: []string{"eval", "-d", cmdHandoffDir, "-I", cmdHandoffQ}, stdin: `{"credential": {"kind": "basic", "username": "chatbot"}, "tenant": ""}`,
			want: []string{`"allow": true`, `"listed_bot"`}},
		{name: "eval without input: undefined, as opa eval", code: 0,
			args: []string{"eval", "-d", cmdHandoffDir, cmdHandoffQ},
			want: []string{`"allow": false`, `"caller_not_a_listed_bot"`}},
		{name: "eval --timeout", code: 0,
			args: []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "--timeout", "10s"},
			want: []string{`"allow": true`}},
		{name: "eval --strict-builtin-errors: always on", code: 0,
			args: []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "--strict-builtin-errors"}},
		{name: "eval --strict-builtin-errors=false refused", code: 2,
			args:    []string{"eval", "-c", "Caddyfile.example", "-i", cmdBotInput, "--strict-builtin-errors=false"},
			wantErr: "not supported"},
		{name: "eval --handler", code: 0,
			args: []string{"eval", "-c", cmdTwoSites, "--handler", "1", "-i", cmdDeniedInput},
			want: []string{`"allow": true`, `"data.resetguard.test.decision"`}},
		{name: "eval error exits 2", code: 2,
			args:    []string{"eval", "-c", cmdTwoSites, "-i", cmdBotInput},
			wantErr: "found 2 reset_guard handlers"},
		{name: "eval -p is opa eval's --partial, not ours", code: 1,
			args:    []string{"eval", "-p", cmdHandoffDir, "-i", cmdBotInput, cmdHandoffQ},
			wantErr: "unknown shorthand flag: 'p'"},
		{name: "eval two queries", code: 1,
			args:    []string{"eval", "-d", cmdHandoffDir, cmdHandoffQ, "data.handoff"},
			wantErr: "accepts at most 1 arg"},
		{name: "eval deprecated --policy and --query still work", code: 0,
			args: []string{"eval", "--policy", cmdHandoffDir, "--query", cmdHandoffQ, "-i", cmdBotInput},
			want: []string{`"listed_bot"`}},
		{name: "eval deprecated --query beside the argument", code: 2,
			args:    []string{"eval", "-d", cmdHandoffDir, "-q", cmdHandoffQ, "-i", cmdBotInput, cmdHandoffQ},
			wantErr: "give the query once"},

		// policy test: 0 pass, 2 a test failed, 1 an error.
		{name: "test verbose with paths as arguments", code: 0,
			args: []string{"test", "-v", "--timeout", "30s", cmdHandoffDir},
			want: []string{"data.resetguard.handoff_test.test_listed_onsite_bot_may_hand_off: PASS (", "PASS: "}},
		{name: "test failing exits 2", code: 2,
			args: []string{"test", "-r", "agent", "testdata/cmd/failing"},
			want: []string{"FAIL: 1/1"}},
		{name: "test --format json", code: 0,
			args: []string{"test", "--format", "json", cmdHandoffDir},
			want: []string{`"package": "data.resetguard.handoff_test"`}},
		{name: "test -c: coverage", code: 0,
			args: []string{"test", "-c", cmdHandoffDir},
			want: []string{`"coverage": `, `"covered_lines": `}},
		{name: "test --threshold 100 exits 2", code: 2,
			args:    []string{"test", "--threshold", "100", cmdHandoffDir},
			wantErr: "Code coverage threshold not met"},
		{name: "test -b", code: 0,
			args: []string{"test", "-b", cmdHandoffDir},
			want: []string{"PASS: "}},
		{name: "test --ignore", code: 0,
			args: []string{"test", "--ignore", "*_test.rego", cmdHandoffDir}},
		{name: "test no tests, --fail-on-empty", code: 1,
			args:    []string{"test", "--fail-on-empty", "testdata/cmd/notests"},
			wantErr: "no tests were run"},
		{name: "test skipped exits 2 unless -z", code: 0,
			args: []string{"test", "-z", "-r", "chatbot", "testdata/cmd/failing"}},
		{name: "test -t is --target, not --timeout", code: 1,
			args:    []string{"test", "-t", "30s", cmdHandoffDir},
			wantErr: "must be one of"},
		{name: "test -t wasm", code: 1,
			args:    []string{"test", "-t", "wasm", cmdHandoffDir},
			wantErr: "not supported"},
		{name: "test --explain", code: 2,
			args: []string{"test", "--explain", "fails", "testdata/cmd/failing"},
			want: []string{"FAILURES", "Fail data.resetguard.cmdfailing.allow"}},
		{name: "test -p 1", code: 0,
			args: []string{"test", "-p", "1", cmdHandoffDir}},
		{name: "test broken Rego exits 1", code: 1,
			args:    []string{"test", "testdata/broken_policy"},
			wantErr: "rego_parse_error"},
		{name: "test without paths", code: 1,
			args:    []string{"test"},
			wantErr: "requires at least 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCommandIn(t, tt.stdin, append([]string{"policy"}, tt.args...)...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit status %d (error %v), want %d; stdout:\n%s", got, err, tt.code, stdout.String())
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantErr == "" && tt.code != 0 && stderr.Len() != 0 {
				// A verdict is not an error: cobra must not add "Error: ...".
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
