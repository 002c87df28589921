package cli_test

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/cli"
)

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

// TestPolicyTestCommand runs passing, failing, erroring and skipped Rego
// tests and checks what is listed and the summary line.
func TestPolicyTestCommand(t *testing.T) {
	// A test that errors (a built-in error) and one to skip.
	erroring := filepath.Dir(cmdWriteFile(t, "err_test.rego", `package resetguard.cmderr_test

test_bad_number if to_number("not a number") == 1

todo_test_later if false

test_fine if true
`))

	runTestCases(t, []testCase{
		{
			name:     "handoff policy passes",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}},
			wantCode: 0, verdict: "PASS", wantN: -1,
			notWant: []string{"PASS  data."},
		},
		{
			name:     "handoff policy passes, verbose",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Verbose: true},
			wantCode: 0, verdict: "PASS", wantN: -1,
			want: []string{"PASS  data.resetguard.handoff_test.test_listed_onsite_bot_may_hand_off  testdata/policies/handoff/handoff_test.rego:"},
		},
		{
			name:     "--run filter",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: `protected_session`, Verbose: true},
			wantCode: 0, verdict: "PASS", wantN: 1, wantTotal: 1,
			want: []string{"test_protected_session_is_never_reset"},
		},
		{
			name:     "a failing test",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}},
			wantCode: 2, verdict: "FAIL", wantN: 1, wantTotal: 2,
			want: []string{
				"FAIL  data.resetguard.cmdfailing_test.test_agent_is_allowed_fails  testdata/cmd/failing/policy_test.rego:10  (",
				"failed at testdata/cmd/failing/policy_test.rego:11: data.resetguard.cmdfailing.allow",
			},
			notWant: []string{"PASS  ", "test_chatbot_is_allowed"},
		},
		{
			name:     "a failing test, verbose",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, Verbose: true},
			wantCode: 2, verdict: "FAIL", wantN: 1, wantTotal: 2,
			want: []string{
				"PASS  data.resetguard.cmdfailing_test.test_chatbot_is_allowed  testdata/cmd/failing/policy_test.rego:5",
				"FAIL  data.resetguard.cmdfailing_test.test_agent_is_allowed_fails",
			},
		},
		{
			name:     "an erroring test and a skipped one",
			opts:     cli.TestOptions{Paths: []string{erroring}, Verbose: true},
			wantCode: 2, verdict: "FAIL", wantN: 1, wantTotal: 3,
			want: []string{
				"ERROR data.resetguard.cmderr_test.test_bad_number",
				"to_number",
				"SKIP  data.resetguard.cmderr_test.todo_test_later",
				"PASS  data.resetguard.cmderr_test.test_fine",
				"(1 errored, 1 skipped)",
			},
		},
	})
}

// TestPolicyTestErrors: Rego that does not load or compile, and paths or
// filters that leave no test to run, are errors (exit 1), so that CI cannot
// pass vacuously.
func TestPolicyTestErrors(t *testing.T) {
	runTestCases(t, []testCase{
		{
			name:     "Rego syntax error",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/broken"}},
			wantCode: 1,
			wantErr:  []string{"testdata/cmd/broken/broken.rego:6", "rego_parse_error"},
		},
		{
			name:     "Rego type error",
			opts:     cli.TestOptions{Paths: []string{"testdata/policies/broken/typeerr.rego", cmdHandoffDir}},
			wantCode: 1,
			wantErr:  []string{"testdata/policies/broken/typeerr.rego:", "rego_type_error"},
		},
		{
			name:     "a directory without tests",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/notests"}},
			wantCode: 1,
			wantErr:  []string{"no Rego tests found in testdata/cmd/notests"},
		},
		{
			name:     "a directory without tests next to one with tests",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir, "testdata/cmd/notests"}},
			wantCode: 1,
			wantErr:  []string{"no Rego tests found in testdata/cmd/notests"},
		},
		{
			name:     "a policy file alone",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/notests/policy.rego"}},
			wantCode: 1,
			wantErr:  []string{"no Rego tests found in testdata/cmd/notests/policy.rego"},
		},
		{
			name:     "--run matching nothing",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: "no_such_test"},
			wantCode: 1,
			wantErr:  []string{`no Rego tests found matching --run "no_such_test"`},
		},
		{
			name:     "bad --run regex",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: "test_("},
			wantCode: 1,
			wantErr:  []string{"--run"},
		},
		{
			name:     "missing path",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/no-such-dir"}},
			wantCode: 1,
			wantErr:  []string{"no-such-dir"},
		},
		{
			name:     "no paths",
			opts:     cli.TestOptions{},
			wantCode: 1,
			wantErr:  []string{"no paths given"},
		},
	})
}

// testCase is one `policy test` run and what it must give.
type testCase struct {
	name     string
	opts     cli.TestOptions
	wantCode int
	wantErr  []string
	// For codes 0 and 2:
	verdict   string   // PASS or FAIL
	wantN     int      // n of "n/total"; -1: n == total > 0
	wantTotal int      // 0: any > 0
	want      []string // substrings of the output
	notWant   []string
}

// runTestCases runs each case as a subtest: the exit code, then the error
// or the output's summary line, test lines and substrings.
func runTestCases(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			code, err := cli.RunPolicyTest(context.Background(), tt.opts, &stdout)
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
