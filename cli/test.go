package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/spf13/cobra"

	"github.com/resetguard/caddy-resetguard/policy"
)

// DefaultTestTimeout bounds one Rego unit test in `policy test`, as in
// `opa test`.
const DefaultTestTimeout = 5 * time.Second

// testOptions are the flags and arguments of `policy test`.
type testOptions struct {
	Paths   []string
	Verbose bool
	// Run keeps only tests whose full name (data.pkg.test_x) matches.
	Run string
	// Timeout bounds each test; 0 means DefaultTestTimeout.
	Timeout time.Duration
	// AllowNetworkBuiltins permits http.send and net.lookup_ip_addr (and
	// so mocking them with `with`), as the handler option
	// policy.allow_network_builtins does.
	AllowNetworkBuiltins bool
}

func newPolicyTestCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "test [--verbose] [--run <regex>] [--timeout <duration>] [--allow-network-builtins] <path>...",
		Short: "Runs the policy's Rego unit tests",
		Long: `
Runs the Rego unit tests (rules named test_*, usually in *_test.rego files;
todo_* rules are skipped) of the given files and directories with OPA's test
runner. Directories are read recursively, with their JSON/YAML data documents.

The policy is compiled and evaluated as the handler does it: a built-in
function error anywhere in a test's evaluation makes the test ERROR (the
handler refuses such a request with its error_status and reason
policy_error); network built-ins are refused at load unless
--allow-network-builtins is given (the handler's policy.allow_network_builtins);
rand.intn, uuid.rfc4122 and opa.runtime are always refused; a gzipped
bundle inside a directory given is refused (name bundles to the handler's
bundle option instead).

Each directory given must hold at least one test, and at least one test must
run, so that a CI job cannot pass vacuously. Failing and erroring tests are
always listed; --verbose lists every test. The last line is always the
summary, "PASS: <passed>/<total>" or "FAIL: <failed or errored>/<total>".

Exit status: 0 all tests pass, 2 a test failed or errored, 1 when the Rego
cannot be loaded or compiled (the error names file:line) or no tests were found.
`,
		Args: cobra.MinimumNArgs(1),
	}
	f := c.Flags()
	f.BoolP("verbose", "v", false, "list every test, not only the ones that fail")
	f.StringP("run", "r", "", "run only tests whose full name (data.<package>.<test>) matches this regular expression")
	f.DurationP("timeout", "t", DefaultTestTimeout, "time limit for each test")
	f.Bool("allow-network-builtins", false, "permit http.send and net.lookup_ip_addr, as policy.allow_network_builtins does")
	c.RunE = cobraRun(func(c *cobra.Command, fl caddycmd.Flags) (int, error) {
		timeout, err := fl.GetDuration("timeout")
		if err != nil {
			return exitError, err
		}
		if timeout <= 0 {
			return exitError, fmt.Errorf("--timeout %s: must be positive", timeout)
		}
		opts := testOptions{
			Paths:   fl.Args(),
			Verbose: fl.Bool("verbose"),
			Run:     fl.String("run"),
			Timeout: timeout,

			AllowNetworkBuiltins: fl.Bool("allow-network-builtins"),
		}
		return runPolicyTest(c.Context(), opts, c.OutOrStdout())
	})
	return c
}

// runPolicyTest is `policy test`. It returns 0 when every test passes, 2
// when one fails or errors, 1 with an error when the tests could not run.
func runPolicyTest(ctx context.Context, opts testOptions, stdout io.Writer) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(opts.Paths) == 0 {
		return exitError, errors.New("no paths given: name the Rego files or directories to test")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTestTimeout
	}
	if _, err := regexp.Compile(opts.Run); err != nil {
		return exitError, fmt.Errorf("--run: %w", err)
	}
	for _, p := range opts.Paths {
		if _, err := os.Stat(p); err != nil {
			return exitError, fmt.Errorf("loading Rego: %w", err)
		}
	}
	results, err := runRegoTests(ctx, opts)
	if err != nil {
		return exitError, err
	}
	return reportTests(stdout, results, opts.Verbose), nil
}

// runRegoTests loads and runs the tests and returns their results in
// source order (the runner works in parallel). Finding no test at all is
// an error, so that a CI job cannot pass vacuously.
func runRegoTests(ctx context.Context, opts testOptions) ([]*tester.Result, error) {
	if err := policy.RefuseBundleFiles(opts.Paths); err != nil {
		return nil, err
	}
	modules, store, err := tester.Load(opts.Paths, nil)
	if err != nil {
		return nil, fmt.Errorf("loading Rego: %w", err)
	}
	if err := checkTestsPresent(opts.Paths, modules); err != nil {
		return nil, err
	}
	// The handler's compiler (capabilities, refused built-ins, print),
	// and built-in errors raised: what passes here is what the handler
	// decides.
	ch, err := tester.NewRunner().
		SetCompiler(policy.NewCompiler(opts.AllowNetworkBuiltins)).
		SetStore(store).
		SetTimeout(opts.Timeout).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		EnableTracing(true).
		Filter(opts.Run).
		Run(ctx, modules)
	if err != nil {
		return nil, fmt.Errorf("compiling Rego: %w", policy.ExplainCompileError(err, opts.AllowNetworkBuiltins))
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	if len(results) == 0 {
		if opts.Run != "" {
			return nil, fmt.Errorf("no Rego tests found matching --run %q in %s", opts.Run, strings.Join(opts.Paths, " "))
		}
		return nil, fmt.Errorf("no Rego tests found in %s", strings.Join(opts.Paths, " "))
	}
	slices.SortFunc(results, func(a, b *tester.Result) int {
		if c := strings.Compare(resultFile(a), resultFile(b)); c != 0 {
			return c
		}
		if c := resultRow(a) - resultRow(b); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return results, nil
}

// testTally counts the outcomes of a test run.
type testTally struct {
	pass, fail, errs, skip int
}

// reportTests prints one line per failing or erroring test (per test when
// verbose) and the summary line last, and returns the exit code.
func reportTests(stdout io.Writer, results []*tester.Result, verbose bool) int {
	var n testTally
	for _, r := range results {
		outcome := "PASS"
		switch {
		case r.Skip:
			n.skip++
			outcome = "SKIP"
		case r.Error != nil:
			n.errs++
			outcome = "ERROR"
		case r.Fail:
			n.fail++
			outcome = "FAIL"
		default:
			n.pass++
		}
		if verbose || (outcome != "PASS" && outcome != "SKIP") {
			printResult(stdout, r, outcome, verbose)
		}
	}
	fmt.Fprintln(stdout, n.summary(len(results)))
	if n.fail+n.errs > 0 {
		return exitVerdict
	}
	return exitOK
}

// printResult prints a test's line with what a reader needs to fix it:
// the error, the failed expression, what the test printed.
func printResult(stdout io.Writer, r *tester.Result, outcome string, verbose bool) {
	fmt.Fprintf(stdout, "%-5s %s.%s  %s:%d", outcome, r.Package, r.Name, resultFile(r), resultRow(r))
	if !r.Skip {
		fmt.Fprintf(stdout, "  (%s)", r.Duration.Round(time.Microsecond))
	}
	fmt.Fprintln(stdout)
	if r.Error != nil {
		fmt.Fprintf(stdout, "      %s\n", indent(r.Error.Error(), "      "))
	}
	if r.Fail {
		if at := failedAt(r.Trace); at != "" {
			fmt.Fprintf(stdout, "      failed at %s\n", at)
		}
	}
	if out := strings.TrimSpace(string(r.Output)); out != "" && (r.Fail || r.Error != nil || verbose) {
		fmt.Fprintf(stdout, "      print: %s\n", indent(out, "             "))
	}
}

// summary is the last line of `policy test`, "PASS: n/total" or
// "FAIL: n/total", with failed/errored/skipped counts when they matter.
func (n testTally) summary(total int) string {
	summary := fmt.Sprintf("PASS: %d/%d", n.pass, total)
	if n.fail+n.errs > 0 {
		summary = fmt.Sprintf("FAIL: %d/%d", n.fail+n.errs, total)
	}
	var notes []string
	if n.fail > 0 && n.errs > 0 {
		notes = append(notes, fmt.Sprintf("%d failed", n.fail), fmt.Sprintf("%d errored", n.errs))
	} else if n.errs > 0 {
		notes = append(notes, fmt.Sprintf("%d errored", n.errs))
	}
	if n.skip > 0 {
		notes = append(notes, fmt.Sprintf("%d skipped", n.skip))
	}
	if len(notes) > 0 {
		summary += " (" + strings.Join(notes, ", ") + ")"
	}
	return summary
}

// checkTestsPresent refuses a directory argument that holds no test rule,
// so that a misspelt or emptied directory cannot make CI pass vacuously.
// File arguments are not checked one by one: a policy file is commonly
// named next to its test file.
func checkTestsPresent(paths []string, modules map[string]*ast.Module) error {
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil || !info.IsDir() {
			continue
		}
		dir, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		has := false
		for name, m := range modules {
			abs, err := filepath.Abs(name)
			if err != nil {
				continue
			}
			if rel, err := filepath.Rel(dir, abs); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				continue
			}
			if hasTestRule(m) {
				has = true
				break
			}
		}
		if !has {
			return fmt.Errorf("no Rego tests found in %s (no test_ rules in its .rego files)", p)
		}
	}
	return nil
}

// hasTestRule mirrors the runner's choice of test rules: a rule whose name
// (any ground part of its head reference) starts with test_ or todo_.
func hasTestRule(m *ast.Module) bool {
	for _, r := range m.Rules {
		for _, t := range r.Head.Ref().GroundPrefix() {
			var n string
			switch v := t.Value.(type) {
			case ast.Var:
				n = string(v)
			case ast.String:
				n = string(v)
			}
			if strings.HasPrefix(n, tester.TestPrefix) || strings.HasPrefix(n, tester.SkipTestPrefix) {
				return true
			}
		}
	}
	return false
}

// resultFile and resultRow place a result for sorting and printing; a
// result without a location sorts first.
func resultFile(r *tester.Result) string {
	if r.Location == nil {
		return ""
	}
	return r.Location.File
}

func resultRow(r *tester.Result) int {
	if r.Location == nil {
		return 0
	}
	return r.Location.Row
}

// failedAt names the expression that made a test fail, as `opa test`'s
// failure line does: the last failed expression of the trace.
func failedAt(trace []*topdown.Event) string {
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		expr, ok := e.Node.(*ast.Expr)
		if !ok {
			continue
		}
		if _, every := expr.Terms.(*ast.Every); every {
			continue
		}
		return fmt.Sprintf("%s:%d: %s", e.Location.File, e.Location.Row, expr)
	}
	return ""
}

// indent keeps a multi-line message under its test's line.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
