package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"

	"github.com/resetguard/caddy-resetguard/policy"
)

// DefaultTestTimeout bounds one Rego unit test in `policy test` when
// --timeout is not given, as in `opa test`.
const DefaultTestTimeout = 5 * time.Second

// Output formats and --explain modes of `policy test`, spelt as `opa test`
// spells them.
const (
	formatPretty = "pretty"
	formatJSON   = "json"

	explainFails = "fails"
	explainFull  = "full"
	explainNotes = "notes"
	explainDebug = "debug"

	targetRego = "rego"
	targetWasm = "wasm"
)

// testOptions are the flags and arguments of `policy test`. Every field but
// AllowNetworkBuiltins is a flag of `opa test` and means what it means
// there.
type testOptions struct {
	Paths   []string
	Verbose bool
	// Run keeps only tests whose full name (data.pkg.test_x) matches.
	Run string
	// Format is "pretty" (the default when empty) or "json"; --coverage
	// replaces either with OPA's coverage report.
	Format string
	// Coverage reports coverage (OPA's JSON coverage report) instead of
	// the test results; Threshold > 0 implies it and fails the run (exit
	// 2) when coverage is below that percentage.
	Coverage  bool
	Threshold float64
	// Ignore are file and directory name patterns the loader skips.
	Ignore []string
	// Bundle loads the paths as bundles (directories or .tar.gz).
	Bundle bool
	// Timeout bounds each test; 0 means DefaultTestTimeout.
	Timeout time.Duration
	// Target is the evaluation target; only "rego" (or "") is supported.
	Target string
	// FailOnEmpty makes a run in which no test ran fail (exit 1).
	FailOnEmpty bool
	// ExitZeroOnSkipped keeps skipped (todo_) tests from failing the run.
	ExitZeroOnSkipped bool
	// Explain is the trace shown with each test ("" none unless verbose;
	// fails, full, notes, debug); setting it implies Verbose.
	Explain string
	// Parallel is how many tests run at once; 0 means one per CPU.
	Parallel int
	// VarValues shows the failing expression and its local variables.
	VarValues bool
	// AllowNetworkBuiltins permits http.send and net.lookup_ip_addr (and
	// so mocking them with `with`), as the handler option
	// policy.allow_network_builtins does.
	AllowNetworkBuiltins bool
}

const testLong = `
Runs the Rego unit tests (rules named test_*; todo_* rules are skipped) of
the given files and directories with OPA's own test runner and reporters,
as 'opa test' does, and takes the same flags where they overlap. Directories
are read recursively with their JSON/YAML data documents (with --bundle, each
path is loaded as a bundle instead).

The one difference from 'opa test' is the one that makes a passing test
mean something for the gateway: the policy is compiled and evaluated as the
reset_guard handler does it. A built-in function error anywhere in a test's
evaluation makes the test ERROR (the handler refuses such a request with its
error_status and reason policy_error; 'opa test' would read it as
undefined); network built-ins are refused at load unless
--allow-network-builtins is given (the handler's
policy.allow_network_builtins); rand.intn, uuid.rfc4122 and opa.runtime are
always refused; a gzipped bundle inside a directory given is refused (name
bundles to the handler's bundle option, or test them with --bundle).

Output: --format pretty (the default) lists failing and erroring tests
(--verbose: every test) and ends with OPA's summary lines "PASS: n/total",
"FAIL: n/total", "SKIPPED: n/total", "ERROR: n/total"; --format json is OPA's
JSON array of test results; --coverage prints OPA's JSON coverage report
instead. Results are listed in source order.

Exit status, as 'opa test': 0 all tests pass (also when none ran, unless
--fail-on-empty); 2 a test failed, errored or was skipped (skipped tests
pass with --exit-zero-on-skipped), or coverage is below --threshold; 1 the
Rego could not be loaded or compiled (the error names file:line), no test
ran under --fail-on-empty, or --coverage met a failing test.
`

func newPolicyTestCommand() *cobra.Command {
	var (
		opts    testOptions
		format  = util.NewEnumFlag(formatPretty, []string{formatPretty, formatJSON})
		explain = util.NewEnumFlag(explainFails, []string{explainFails, explainFull, explainNotes, explainDebug})
		target  = util.NewEnumFlag(targetRego, []string{targetRego, targetWasm})
	)
	c := &cobra.Command{
		Use:   "test [flags] <path>...",
		Short: "Runs the policy's Rego unit tests, as opa test does",
		Long:  testLong,
		Args:  cobra.MinimumNArgs(1),
	}
	f := c.Flags()
	f.BoolVarP(&opts.Verbose, "verbose", "v", false, "set verbose reporting mode")
	f.StringVarP(&opts.Run, "run", "r", "", "run only test cases matching the regular expression")
	f.VarP(format, "format", "f", "set output format")
	f.BoolVarP(&opts.Coverage, "coverage", "c", false, "report coverage (OPA's JSON coverage report)")
	f.Float64Var(&opts.Threshold, "threshold", 0, "set coverage threshold and exit with status 2 if coverage is less than threshold %")
	f.StringSliceVar(&opts.Ignore, "ignore", nil, "set file and directory names to ignore during loading (e.g., '.*' excludes hidden files)")
	f.BoolVarP(&opts.Bundle, "bundle", "b", false, "load paths as bundle files or root directories")
	f.DurationVar(&opts.Timeout, "timeout", 0, "set test timeout (default 5s)")
	f.VarP(target, "target", "t", "set the runtime to exercise (only rego: the gateway evaluates Rego)")
	f.BoolVar(&opts.FailOnEmpty, "fail-on-empty", false, "fail (exit 1) when no test was run")
	f.BoolVarP(&opts.ExitZeroOnSkipped, "exit-zero-on-skipped", "z", false, "skipped tests return status 0")
	f.Var(explain, "explain", "enable query explanations (implies --verbose)")
	f.IntVarP(&opts.Parallel, "parallel", "p", runtime.NumCPU(), "the number of tests that can run in parallel")
	f.BoolVar(&opts.VarValues, "var-values", false, "show local variable values in test output")
	f.BoolVar(&opts.AllowNetworkBuiltins, "allow-network-builtins", false, "permit http.send and net.lookup_ip_addr, as policy.allow_network_builtins does")
	c.RunE = cobraRun(func(c *cobra.Command, fl caddycmd.Flags) (int, error) {
		opts.Paths = fl.Args()
		opts.Format = format.String()
		if explain.IsSet() {
			opts.Explain = explain.String()
		}
		if target.IsSet() {
			opts.Target = target.String()
		}
		return runPolicyTest(c.Context(), opts, c.OutOrStdout())
	})
	return c
}

// runPolicyTest is `policy test`, with `opa test`'s exit codes: 0 when
// every test passes, 2 when one fails, errors or is skipped, 1 with an
// error when the tests could not run.
func runPolicyTest(ctx context.Context, opts testOptions, stdout io.Writer) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	opts, err := checkTestOptions(opts)
	if err != nil {
		return exitError, err
	}
	modules, bundles, store, err := loadTests(opts)
	if err != nil {
		return exitError, err
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return exitError, fmt.Errorf("opening the test store: %w", err)
	}
	// Nothing is written for good: the runner activates bundles in this
	// transaction for the run only.
	defer store.Abort(ctx, txn)

	runner, reporter := setUpTests(ctx, opts, store, txn, modules, bundles, stdout)
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return exitError, fmt.Errorf("compiling Rego: %w", policy.ExplainCompileError(err, opts.AllowNetworkBuiltins))
	}
	return reportTests(opts, collectResults(opts, ch), reporter)
}

// checkTestOptions refuses what `opa test` refuses, and what the gateway
// cannot do, before anything is loaded; it fills in the defaults.
func checkTestOptions(opts testOptions) (testOptions, error) {
	if len(opts.Paths) == 0 {
		return opts, errors.New("no paths given: name the Rego files or directories to test")
	}
	switch opts.Format {
	case "":
		opts.Format = formatPretty
	case formatPretty, formatJSON:
	default:
		return opts, fmt.Errorf("--format %q: want pretty or json", opts.Format)
	}
	switch opts.Explain {
	case "", explainFails, explainFull, explainNotes, explainDebug:
	default:
		return opts, fmt.Errorf("--explain %q: want fails, full, notes or debug", opts.Explain)
	}
	switch opts.Target {
	case "", targetRego:
	case targetWasm:
		return opts, errors.New("--target wasm: not supported; the gateway evaluates the Rego itself, so its tests run on the rego target")
	default:
		return opts, fmt.Errorf("--target %q: want rego", opts.Target)
	}
	if opts.Threshold < 0 || opts.Threshold > 100 {
		return opts, fmt.Errorf("--threshold %g: code coverage threshold must be between 0 and 100", opts.Threshold)
	}
	if opts.Threshold > 0 {
		opts.Coverage = true // as opa test: a threshold needs the coverage
	}
	if opts.Timeout < 0 {
		return opts, fmt.Errorf("--timeout %s: must be positive", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTestTimeout
	}
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.NumCPU()
	}
	if opts.Explain != "" {
		opts.Verbose = true // as opa test
	}
	if _, err := regexp.Compile(opts.Run); err != nil {
		return opts, fmt.Errorf("--run: %w", err)
	}
	return opts, nil
}

// loadTests loads the paths as `opa test` does, with OPA's test loaders:
// files and directories with their data documents, or bundles.
func loadTests(opts testOptions) (map[string]*ast.Module, map[string]*bundle.Bundle, storage.Store, error) {
	popts := ast.ParserOptions{RegoVersion: ast.DefaultRegoVersion, ProcessAnnotation: true}
	filter := ignoreFilter(opts.Ignore)
	if opts.Bundle {
		bundles, store, err := tester.LoadBundlesWithParserOptions(opts.Paths, filter, popts)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("loading bundles: %w", err)
		}
		modules := map[string]*ast.Module{}
		for name, b := range bundles {
			for file, m := range b.ParsedModules(name) {
				modules[file] = m
			}
		}
		// The runner compiles the bundles' modules itself: the modules are
		// handed to it only for the coverage report, as opa test does.
		if !opts.Coverage {
			modules = nil
		}
		return modules, bundles, store, nil
	}
	// OPA's file loader would merge a tarball found in a directory with
	// the files, its manifest's roots ignored; the handler refuses it.
	if err := policy.RefuseBundleFiles(opts.Paths); err != nil {
		return nil, nil, nil, err
	}
	modules, store, err := tester.LoadWithParserOptions(opts.Paths, filter, popts)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("loading Rego: %w", err)
	}
	return modules, nil, store, nil
}

// ignoreFilter is `opa test --ignore`: a file or directory whose name
// matches one of the patterns is not loaded.
func ignoreFilter(patterns []string) loader.Filter {
	if len(patterns) == 0 {
		return nil
	}
	return func(abspath string, info os.FileInfo, depth int) bool {
		for _, p := range patterns {
			if loader.GlobExcludeName(p, 1)(abspath, info, depth) {
				return true
			}
		}
		return false
	}
}

// setUpTests builds OPA's test runner and the reporter, wired as `opa test`
// wires them, with the handler's compiler (capabilities, refused
// built-ins, print) and built-in errors raised: what passes here is what
// the handler decides.
func setUpTests(ctx context.Context, opts testOptions, store storage.Store, txn storage.Transaction,
	modules map[string]*ast.Module, bundles map[string]*bundle.Bundle, stdout io.Writer) (*tester.Runner, tester.Reporter) {
	compiler := policy.NewCompiler(opts.AllowNetworkBuiltins).
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithUseTypeCheckAnnotations(true).
		WithRewriteTestRules(opts.VarValues)

	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		EnableTracing(opts.Verbose || opts.VarValues).
		StackTraces(true).
		SetModules(modules).
		SetBundles(bundles).
		SetTimeout(opts.Timeout).
		Filter(opts.Run).
		SetParallel(opts.Parallel)
	if opts.Target != "" {
		runner = runner.Target(opts.Target)
	}

	if opts.Coverage {
		// After EnableTracing, which would drop it: coverage wins, as in
		// opa test.
		cov := cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
		return runner, tester.JSONCoverageReporter{
			Cover:     cov,
			Modules:   modules,
			Output:    stdout,
			Threshold: opts.Threshold,
			Verbose:   opts.Verbose,
		}
	}
	if opts.Format == formatJSON {
		return runner, tester.JSONReporter{Output: stdout}
	}
	return runner, tester.PrettyReporter{
		Output:      stdout,
		Verbose:     opts.Verbose,
		FailureLine: opts.VarValues,
		LocalVars:   opts.VarValues,
	}
}

// collectResults reads every result, keeps of each trace what --explain
// (or --verbose) asks for, and returns them in source order: the runner
// works in parallel, and a report in the order the tests finished would
// differ from run to run.
func collectResults(opts testOptions, ch chan *tester.Result) []*tester.Result {
	var results []*tester.Result
	for r := range ch {
		r.Trace = filterTrace(opts, r.Trace)
		results = append(results, r)
	}
	slices.SortFunc(results, func(a, b *tester.Result) int {
		if c := strings.Compare(resultFile(a), resultFile(b)); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(resultRow(a), resultRow(b)), strings.Compare(a.Name, b.Name))
	})
	return results
}

// reportTests hands the results to the reporter and returns `opa test`'s
// exit code for them.
func reportTests(opts testOptions, results []*tester.Result, reporter tester.Reporter) (int, error) {
	code := exitOK
	for _, r := range results {
		if !r.Pass() && !(r.Skip && opts.ExitZeroOnSkipped) {
			code = exitVerdict
		}
	}
	ch := make(chan *tester.Result, len(results))
	for _, r := range results {
		ch <- r
	}
	close(ch)
	if err := reporter.Report(ch); err != nil {
		var threshold *cover.CoverageThresholdError
		if errors.As(err, &threshold) {
			return exitVerdict, err
		}
		return exitError, err
	}
	if len(results) == 0 && opts.FailOnEmpty {
		if opts.Run != "" {
			return exitError, fmt.Errorf("no tests were run: none found matching --run %q in %s", opts.Run, strings.Join(opts.Paths, " "))
		}
		return exitError, fmt.Errorf("no tests were run: none found in %s", strings.Join(opts.Paths, " "))
	}
	return code, nil
}

// filterTrace is `opa test`'s choice of trace events to show: with
// --verbose and no --explain, notes and failures; else what --explain
// names (failures by default, which is nothing when tracing is off).
func filterTrace(opts testOptions, trace []*topdown.Event) []*topdown.Event {
	if opts.Explain == "" && opts.Verbose {
		return lineage.Filter(trace, func(e *topdown.Event) bool {
			return e.Op == topdown.NoteOp || e.Op == topdown.FailOp
		})
	}
	switch opts.Explain {
	case explainNotes:
		return lineage.Notes(trace)
	case explainFull:
		return lineage.Full(trace)
	case explainDebug:
		return lineage.Debug(trace)
	default:
		return lineage.Fails(trace)
	}
}

// resultFile and resultRow place a result for sorting; a result without a
// location sorts first.
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
