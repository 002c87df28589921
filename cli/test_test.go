package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/cli"
)

// cmdSummary is one of the summary lines of OPA's pretty reporter.
var cmdSummary = regexp.MustCompile(`(?m)^(PASS|FAIL|SKIPPED|ERROR): (\d+/\d+)$`)

// cmdSummaryOf reads the summary lines of pretty output: outcome → "n/total".
func cmdSummaryOf(out string) map[string]string {
	got := map[string]string{}
	for _, m := range cmdSummary.FindAllStringSubmatch(out, -1) {
		got[m[1]] = m[2]
	}
	return got
}

// erroringTests is a directory whose tests pass, error (a built-in
// error, with the gateway's strict evaluation), are skipped, print and
// run slowly.
func erroringTests(t *testing.T) string {
	t.Helper()
	return filepath.Dir(cmdWriteFile(t, "err_test.rego", `package resetguard.cmderr_test

test_bad_number if to_number("not a number") == 1

todo_test_later if false

test_fine if {
	print("hello from", "test_fine")
}
`))
}

// withBrokenFile is a directory with a passing test and a file that does
// not parse.
func withBrokenFile(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(cmdWriteFile(t, "p_test.rego", "package resetguard.cmdignore_test\n\ntest_fine if true\n"))
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package resetguard.cmdignore\n\nallow if {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// skippingTests is a directory with one passing test and one skipped.
func skippingTests(t *testing.T) string {
	t.Helper()
	return filepath.Dir(cmdWriteFile(t, "skip_test.rego", `package resetguard.cmdskip_test

test_fine if true

todo_test_later if false
`))
}

// slowTests is a directory with a test that takes far longer than 50ms.
func slowTests(t *testing.T) string {
	t.Helper()
	return filepath.Dir(cmdWriteFile(t, "slow_test.rego", `package resetguard.cmdslow_test

test_slow if {
	s := sum([z | some x in numbers.range(1, 3000); some y in numbers.range(1, 3000); z := x * y])
	s > 0
}
`))
}

// TestPolicyTestCommand runs passing, failing, erroring and skipped Rego
// tests and checks OPA's pretty report of them and `opa test`'s exit
// codes: 0 all pass, 2 a test failed, errored or was skipped.
func TestPolicyTestCommand(t *testing.T) {
	erroring := erroringTests(t)
	skipping := skippingTests(t)
	runTestCases(t, []testCase{
		{
			name:     "handoff policy passes: the summary alone",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}},
			wantCode: cli.ExitOK, allPass: true,
			notWant: []string{"data.resetguard", "FAIL", "ERROR"},
		},
		{
			name:     "handoff policy passes, verbose: every test under its file",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Verbose: true},
			wantCode: cli.ExitOK, allPass: true,
			want: []string{
				"testdata/policies/handoff/handoff_test.rego:",
				"data.resetguard.handoff_test.test_listed_onsite_bot_may_hand_off: PASS (",
			},
		},
		{
			name:     "-r filter",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: `protected_session`, Verbose: true},
			wantCode: cli.ExitOK, summary: map[string]string{"PASS": "1/1"},
			want: []string{"test_protected_session_is_never_reset: PASS"},
		},
		{
			name:     "a failing test exits 2",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/2", "FAIL": "1/2"},
			want: []string{
				"testdata/cmd/failing/policy_test.rego:10:\ndata.resetguard.cmdfailing_test.test_agent_is_allowed_fails: FAIL (",
			},
			notWant: []string{"test_chatbot_is_allowed", "FAILURES"},
		},
		{
			name:     "a failing test, --var-values: the failing line",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, VarValues: true},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/2", "FAIL": "1/2"},
			want: []string{
				"FAILURES",
				"testdata/cmd/failing/policy_test.rego:11:",
				`cmdfailing.allow with input as {"credential": {"username": "agent7"}}`,
			},
		},
		{
			name:     "a failing test, verbose: every test and the failure's trace",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, Verbose: true},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/2", "FAIL": "1/2"},
			want: []string{
				"data.resetguard.cmdfailing_test.test_chatbot_is_allowed: PASS (",
				"FAILURES",
				"Fail data.resetguard.cmdfailing.allow with input as",
			},
		},
		{
			name:     "--explain full: verbose, with the whole trace",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, Explain: "full"},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/2", "FAIL": "1/2"},
			want: []string{
				"data.resetguard.cmdfailing_test.test_chatbot_is_allowed: PASS (",
				"Enter data.resetguard.cmdfailing_test.test_agent_is_allowed_fails",
				"Index data.resetguard.cmdfailing.allow",
			},
		},
		{
			name:     "an erroring test, a skipped one and print output",
			opts:     cli.TestOptions{Paths: []string{erroring}, Verbose: true},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/3", "SKIPPED": "1/3", "ERROR": "1/3"},
			want: []string{
				// OPA's reporter marks a test that raised an error FAIL
				// on its line and counts it under ERROR.
				"data.resetguard.cmderr_test.test_bad_number: ",
				"err_test.rego:3: eval_builtin_error: to_number",
				"data.resetguard.cmderr_test.todo_test_later: SKIPPED",
				"data.resetguard.cmderr_test.test_fine: PASS (",
				"hello from test_fine",
			},
		},
		{
			name:     "a skipped test exits 2, as in opa test",
			opts:     cli.TestOptions{Paths: []string{skipping}},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/2", "SKIPPED": "1/2"},
		},
		{
			name:     "-z: a skipped test exits 0",
			opts:     cli.TestOptions{Paths: []string{skipping}, ExitZeroOnSkipped: true},
			wantCode: cli.ExitOK, summary: map[string]string{"PASS": "1/2", "SKIPPED": "1/2"},
		},
		{
			name:     "-z does not pass an erroring test",
			opts:     cli.TestOptions{Paths: []string{erroring}, ExitZeroOnSkipped: true},
			wantCode: cli.ExitVerdict, summary: map[string]string{"PASS": "1/3", "SKIPPED": "1/3", "ERROR": "1/3"},
		},
		{
			name:     "--timeout bounds each test",
			opts:     cli.TestOptions{Paths: []string{slowTests(t)}, Timeout: 50 * time.Millisecond},
			wantCode: cli.ExitVerdict, summary: map[string]string{"ERROR": "1/1"},
			want: []string{"test_slow: ERROR", "eval_cancel_error"},
		},
		{
			name:     "-p 1: one test at a time",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Parallel: 1},
			wantCode: cli.ExitOK, allPass: true,
		},
		{
			name:     "-t rego",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Target: "rego"},
			wantCode: cli.ExitOK, allPass: true,
		},
		{
			name:     "-b: the directory as a bundle",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Bundle: true, Verbose: true},
			wantCode: cli.ExitOK, allPass: true,
			want: []string{"data.resetguard.handoff_test.test_listed_onsite_bot_may_hand_off: PASS"},
		},
		{
			name:     "the examples' parent folder",
			opts:     cli.TestOptions{Paths: []string{"testdata/policies"}},
			wantCode: cli.ExitOK, allPass: true,
		},
	})
}

// TestPolicyTestEmpty: as `opa test`, a run in which no test ran passes
// unless --fail-on-empty is given.
func TestPolicyTestEmpty(t *testing.T) {
	runTestCases(t, []testCase{
		{
			name:     "a directory without tests passes, with no output",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/notests"}},
			wantCode: cli.ExitOK, summary: map[string]string{}, empty: true,
		},
		{
			name:     "a directory without tests, --fail-on-empty",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/notests"}, FailOnEmpty: true},
			wantCode: cli.ExitError, wantErr: []string{"no tests were run", "testdata/cmd/notests"},
		},
		{
			name:     "-r matching nothing passes",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: "no_such_test"},
			wantCode: cli.ExitOK, summary: map[string]string{}, empty: true,
		},
		{
			name:     "-r matching nothing, --fail-on-empty",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: "no_such_test", FailOnEmpty: true},
			wantCode: cli.ExitError, wantErr: []string{"no tests were run", `matching --run "no_such_test"`},
		},
		{
			name:     "--ignore leaves the test files out",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Ignore: []string{"*_test.rego"}, FailOnEmpty: true},
			wantCode: cli.ExitError, wantErr: []string{"no tests were run"},
		},
		{
			name:     "--ignore leaves a broken file out",
			opts:     cli.TestOptions{Paths: []string{withBrokenFile(t)}, Ignore: []string{"broken.rego"}},
			wantCode: cli.ExitOK, summary: map[string]string{"PASS": "1/1"},
		},
		{
			name:     "without --ignore the broken file fails the load",
			opts:     cli.TestOptions{Paths: []string{withBrokenFile(t)}},
			wantCode: cli.ExitError, wantErr: []string{"broken.rego:", "rego_parse_error"},
		},
	})
}

// TestPolicyTestJSON: --format json is OPA's JSON array of results, and
// --coverage OPA's JSON coverage report.
func TestPolicyTestJSON(t *testing.T) {
	tests := []struct {
		name     string
		opts     cli.TestOptions
		wantCode int
		check    func(t *testing.T, out []byte)
	}{
		{"results", cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, Format: "json"}, cli.ExitVerdict, func(t *testing.T, out []byte) {
			got := cmdResults(t, out)
			want := map[string]string{
				"data.resetguard.cmdfailing_test.test_chatbot_is_allowed":     "pass",
				"data.resetguard.cmdfailing_test.test_agent_is_allowed_fails": "fail",
			}
			if !maps.Equal(got, want) {
				t.Errorf("results %v, want %v", got, want)
			}
		}},
		{"results with an error and a skip", cli.TestOptions{Paths: []string{erroringTests(t)}, Format: "json"}, cli.ExitVerdict, func(t *testing.T, out []byte) {
			got := cmdResults(t, out)
			want := map[string]string{
				"data.resetguard.cmderr_test.test_bad_number": "error",
				"data.resetguard.cmderr_test.todo_test_later": "skip",
				"data.resetguard.cmderr_test.test_fine":       "pass",
			}
			if !maps.Equal(got, want) {
				t.Errorf("results %v, want %v", got, want)
			}
		}},
		{"coverage", cli.TestOptions{Paths: []string{cmdHandoffDir}, Coverage: true}, cli.ExitOK, func(t *testing.T, out []byte) {
			var rep struct {
				Files    map[string]json.RawMessage `json:"files"`
				Coverage float64                    `json:"coverage"`
			}
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("not a coverage report: %v\n%s", err, out)
			}
			if _, ok := rep.Files["testdata/policies/handoff/handoff.rego"]; !ok || rep.Coverage <= 50 || rep.Coverage > 100 {
				t.Errorf("coverage %.2f%% over %d files, want handoff.rego covered", rep.Coverage, len(rep.Files))
			}
		}},
		{"coverage replaces --format", cli.TestOptions{Paths: []string{cmdHandoffDir}, Coverage: true, Format: "json"}, cli.ExitOK, func(t *testing.T, out []byte) {
			if !bytes.Contains(out, []byte(`"covered_lines"`)) {
				t.Errorf("not a coverage report:\n%.300s", out)
			}
		}},
		{"coverage of a bundle", cli.TestOptions{Paths: []string{cmdHandoffDir}, Coverage: true, Bundle: true}, cli.ExitOK, func(t *testing.T, out []byte) {
			if !bytes.Contains(out, []byte(`"covered_lines"`)) {
				t.Errorf("not a coverage report:\n%.300s", out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			code, err := cli.RunPolicyTest(context.Background(), tt.opts, &stdout)
			if code != tt.wantCode || err != nil {
				t.Fatalf("exit code %d, error %v; want %d; output:\n%s", code, err, tt.wantCode, stdout.String())
			}
			tt.check(t, stdout.Bytes())
		})
	}
}

// cmdResults reads OPA's JSON test results: full name → pass, fail,
// error or skip.
func cmdResults(t *testing.T, out []byte) map[string]string {
	t.Helper()
	var results []struct {
		Location *struct {
			File string `json:"file"`
			Row  int    `json:"row"`
		} `json:"location"`
		Package  string          `json:"package"`
		Name     string          `json:"name"`
		Fail     bool            `json:"fail"`
		Skip     bool            `json:"skip"`
		Error    json.RawMessage `json:"error"`
		Duration int64           `json:"duration"`
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("not OPA's JSON results: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range results {
		if r.Location == nil || r.Location.File == "" || r.Location.Row == 0 {
			t.Errorf("%s.%s: no location", r.Package, r.Name)
		}
		outcome := "pass"
		switch {
		case r.Skip:
			outcome = "skip"
		case len(r.Error) > 0:
			outcome = "error"
		case r.Fail:
			outcome = "fail"
		}
		got[r.Package+"."+r.Name] = outcome
	}
	return got
}

// TestPolicyTestErrors: Rego that does not load or compile, and flags the
// gateway cannot honour, are errors (exit 1), as in `opa test`.
func TestPolicyTestErrors(t *testing.T) {
	runTestCases(t, []testCase{
		{
			name:     "Rego syntax error",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/broken"}},
			wantCode: cli.ExitError,
			wantErr:  []string{"testdata/cmd/broken/broken.rego:6", "rego_parse_error"},
		},
		{
			name:     "Rego type error",
			opts:     cli.TestOptions{Paths: []string{"testdata/broken_policy/typeerr.rego", cmdHandoffDir}},
			wantCode: cli.ExitError,
			wantErr:  []string{"testdata/broken_policy/typeerr.rego:", "rego_type_error"},
		},
		{
			name:     "--coverage with a failing test",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, Coverage: true},
			wantCode: cli.ExitError,
			wantErr:  []string{"test_agent_is_allowed_fails: FAIL"},
		},
		{
			name:     "coverage below --threshold exits 2",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/failing"}, Run: "chatbot", Threshold: 100},
			wantCode: cli.ExitVerdict,
			wantErr:  []string{"Code coverage threshold not met"},
		},
		{
			name:     "--threshold out of range",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Threshold: 101},
			wantCode: cli.ExitError,
			wantErr:  []string{"--threshold 101"},
		},
		{
			name:     "-t wasm",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Target: "wasm"},
			wantCode: cli.ExitError,
			wantErr:  []string{"--target wasm: not supported"},
		},
		{
			name:     "bad -r regex",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Run: "test_("},
			wantCode: cli.ExitError,
			wantErr:  []string{"--run"},
		},
		{
			name:     "negative --timeout",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Timeout: -time.Second},
			wantCode: cli.ExitError,
			wantErr:  []string{"--timeout"},
		},
		{
			name:     "unknown format",
			opts:     cli.TestOptions{Paths: []string{cmdHandoffDir}, Format: "gobench"},
			wantCode: cli.ExitError,
			wantErr:  []string{`--format "gobench"`},
		},
		{
			name:     "missing path",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/no-such-dir"}},
			wantCode: cli.ExitError,
			wantErr:  []string{"no-such-dir"},
		},
		{
			name:     "missing bundle",
			opts:     cli.TestOptions{Paths: []string{"testdata/cmd/no-such-dir"}, Bundle: true},
			wantCode: cli.ExitError,
			wantErr:  []string{"no-such-dir"},
		},
		{
			name:     "no paths",
			opts:     cli.TestOptions{},
			wantCode: cli.ExitError,
			wantErr:  []string{"no paths given"},
		},
	})
}

// testCase is one `policy test` run and what it must give.
type testCase struct {
	name     string
	opts     cli.TestOptions
	wantCode int
	wantErr  []string // substrings of the error; none expected when empty
	// For pretty output:
	summary map[string]string // the summary lines, outcome → "n/total"
	allPass bool              // the summary is "PASS: n/n" alone, n > 0
	empty   bool              // no output at all
	want    []string          // substrings of the output
	notWant []string
}

// runTestCases runs each case as a subtest: the exit code and error, then
// the summary lines and substrings of the output.
func runTestCases(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			code, err := cli.RunPolicyTest(context.Background(), tt.opts, &stdout)
			out := stdout.String()
			if code != tt.wantCode {
				t.Fatalf("exit code = %d (err %v), want %d; output:\n%s", code, err, tt.wantCode, out)
			}
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error with exit code %d", code)
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
			got := cmdSummaryOf(out)
			switch {
			case tt.allPass:
				n, ok := got["PASS"]
				if len(got) != 1 || !ok || !regexp.MustCompile(`^([1-9]\d*)/([1-9]\d*)$`).MatchString(n) || strings.Split(n, "/")[0] != strings.Split(n, "/")[1] {
					t.Errorf("summary %v, want PASS: n/n alone:\n%s", got, out)
				}
			case tt.summary != nil && !maps.Equal(got, tt.summary):
				t.Errorf("summary %v, want %v:\n%s", got, tt.summary, out)
			}
			if tt.empty && out != "" {
				t.Errorf("output, want none:\n%s", out)
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

// TestPolicyTestSourceOrder: the runner works in parallel; the report
// lists the results in source order all the same, so that two runs print
// the same.
func TestPolicyTestSourceOrder(t *testing.T) {
	opts := cli.TestOptions{Paths: []string{"testdata/policies"}, Verbose: true}
	var first string
	for i := range 3 {
		var stdout bytes.Buffer
		if code, err := cli.RunPolicyTest(context.Background(), opts, &stdout); code != cli.ExitOK || err != nil {
			t.Fatalf("exit code %d, error %v", code, err)
		}
		// Durations differ from run to run.
		out := regexp.MustCompile(`\(\d[^)]*\)`).ReplaceAllString(stdout.String(), "(d)")
		if i == 0 {
			first = out
		} else if out != first {
			t.Fatalf("run %d lists the tests in another order", i+1)
		}
	}
	// Files in name order, each file's tests by line.
	var files []string
	for _, l := range strings.Split(first, "\n") {
		if m := regexp.MustCompile(`^(\S+\.rego):\d+:$`).FindStringSubmatch(l); m != nil && (len(files) == 0 || files[len(files)-1] != m[1]) {
			files = append(files, m[1])
		}
	}
	for i := 1; i < len(files); i++ {
		if files[i] <= files[i-1] {
			t.Errorf("file %s listed after %s (or twice)", files[i], files[i-1])
		}
	}
	if len(files) < 6 {
		t.Errorf("%d test files listed, want one per example: %v", len(files), files)
	}
}
