package resetguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"

	"github.com/resetguard/caddy-resetguard/policy"
)

// Exit codes of the policy commands: 0 allowed / all tests pass, 2 denied /
// a test failed, 1 anything that kept the command from answering.
const (
	exitOK      = 0
	exitError   = 1
	exitVerdict = 2
)

// DefaultTestTimeout bounds one Rego unit test in `policy test`, as in
// `opa test`.
const DefaultTestTimeout = 5 * time.Second

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "policy",
		Usage: "eval|test [<flags>] [<paths>...]",
		Short: "Evaluates or unit-tests the reset_guard OPA policy",
		Long: `
Works with the Open Policy Agent policy that the reset_guard handler asks
before a chat session is reset, without starting a server.

  policy eval   evaluates the decision query against one input document
                (resetguard.input/v1) and prints the decision as JSON;
                exit status 0 allowed, 2 denied, 1 error.
  policy test   runs the policy's Rego unit tests (*_test.rego);
                exit status 0 all pass, 2 a test failed, 1 error.

Run 'policy eval --help' or 'policy test --help' for their flags.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(newPolicyEvalCommand(), newPolicyTestCommand())
		},
	})
}

// cobraRun adapts a policy command to cobra through Caddy's wrapper, which
// logs a returned error and turns an exit status above 1 into the process
// exit status. A denial or a failed test is a verdict, already printed on
// stdout, not an error: cobra is told not to print "exiting with status 2"
// after it.
func cobraRun(run func(c *cobra.Command, fl caddycmd.Flags) (int, error)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			code, err := run(c, fl)
			if code != exitOK && err == nil {
				c.SilenceErrors = true
			}
			if code == exitError && err == nil {
				// Caddy's wrapper would exit 0 on (1, nil).
				err = errors.New("policy command failed")
			}
			return code, err
		})(c, args)
	}
}

// ---------------------------------------------------------------- eval

// evalOptions are the flags of `policy eval`.
type evalOptions struct {
	// Config is a Caddy config file holding a reset_guard handler ("-":
	// stdin); Adapter its adapter ("" guesses from the name: Caddyfile if
	// the name contains "caddyfile", else JSON); Handler picks one of
	// several reset_guard handlers (0-based; nil when not given).
	Config  string
	Adapter string
	Handler *int
	// Policies and Bundles, when either is given, replace the config's
	// local policy sources (paths and bundles); Query replaces its query.
	Policies []string
	Bundles  []string
	Query    string
	// Input is the input document file ("-": stdin).
	Input string
	// Repeat is how often to evaluate; above 1 the first is a warm-up
	// left out of the timings.
	Repeat int
}

func newPolicyEvalCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "eval [--config <file> [--adapter <name>] [--handler <n>]] [--policy <path>]... [--bundle <path>]... [--query <ref>] --input <file|-> [--repeat <n>]",
		Short: "Evaluates the decision query against one input document",
		Long: `
Evaluates the reset_guard policy against one input document, exactly as the
handler would (same loader, query checks and decision parsing), and prints

  {"decision": {"allow": .., "reasons": [..], "status": <int|null>, "headers": {..}},
   "query": "..", "policy_revision": "sha256:..",
   "eval_ns": {"min": .., "median": .., "p99": .., "max": ..}, "evaluations": N}

The policy comes from a Caddy config (--config: every handler object with
"handler": "reset_guard" is found; with several, --handler picks one, 0-based,
in the order of the adapted JSON), from --policy/--bundle/--query, or from
both: --policy and --bundle then replace all of the config's local sources
(paths and bundles), --query its query. Relative paths are relative to the
working directory, as when Caddy runs the config. A remote bundle service in
the config is not contacted: only local sources are evaluated.

--input is a resetguard.input/v1 JSON object ("-" reads stdin); see the
README's "Policy contract". --repeat N evaluates N times; when N > 1 the first
evaluation is a warm-up, so eval_ns and evaluations cover the other N-1.

Exit status: 0 allowed, 2 denied (including an invalid policy result), 1 on
any error (unreadable config or input, policy load or evaluation error).
`,
		Args: cobra.NoArgs,
	}
	f := c.Flags()
	f.StringP("config", "c", "", "Caddy config file with a reset_guard handler (\"-\" for stdin)")
	f.StringP("adapter", "a", "", "config adapter (default: caddyfile if the file name contains \"Caddyfile\", else json)")
	f.Int("handler", 0, "which reset_guard handler of the config to use, 0-based, when it has several")
	f.StringArrayP("policy", "p", nil, "Rego/data file or directory (repeatable; replaces the config's local sources)")
	f.StringArrayP("bundle", "b", nil, "local OPA bundle, directory or .tar.gz (repeatable; replaces the config's local sources)")
	f.StringP("query", "q", "", "decision query (replaces the config's; default "+policy.DefaultQuery+")")
	f.StringP("input", "i", "", "input document, resetguard.input/v1 JSON (\"-\" for stdin)")
	f.IntP("repeat", "n", 1, "evaluate this many times and report timings (the first is a warm-up when > 1)")
	c.RunE = cobraRun(func(c *cobra.Command, fl caddycmd.Flags) (int, error) {
		policies, err := fl.GetStringArray("policy")
		if err != nil {
			return exitError, err
		}
		bundles, err := fl.GetStringArray("bundle")
		if err != nil {
			return exitError, err
		}
		var handler *int
		if fl.Changed("handler") {
			n, err := fl.GetInt("handler")
			if err != nil {
				return exitError, err
			}
			handler = &n
		}
		repeat, err := fl.GetInt("repeat")
		if err != nil {
			return exitError, err
		}
		opts := evalOptions{
			Config:   fl.String("config"),
			Adapter:  fl.String("adapter"),
			Handler:  handler,
			Policies: policies,
			Bundles:  bundles,
			Query:    fl.String("query"),
			Input:    fl.String("input"),
			Repeat:   repeat,
		}
		return runPolicyEval(c.Context(), opts, c.InOrStdin(), c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

// evalReport is what `policy eval` prints.
type evalReport struct {
	Decision       evalDecision `json:"decision"`
	Query          string       `json:"query"`
	PolicyRevision string       `json:"policy_revision"`
	EvalNS         evalTimings  `json:"eval_ns"`
	Evaluations    int          `json:"evaluations"`
}

type evalDecision struct {
	Allow   bool        `json:"allow"`
	Reasons []string    `json:"reasons"`
	Status  *int        `json:"status"` // null: the policy set none (a deny is then 403)
	Headers http.Header `json:"headers"`
}

type evalTimings struct {
	Min    int64 `json:"min"`
	Median int64 `json:"median"`
	P99    int64 `json:"p99"`
	Max    int64 `json:"max"`
}

// runPolicyEval is `policy eval`. It returns 0 when the policy allows, 2
// when it denies, 1 with an error when it could not decide.
func runPolicyEval(ctx context.Context, opts evalOptions, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if opts.Input == "" {
		return exitError, errors.New("--input is required (a resetguard.input/v1 JSON file, or - for stdin)")
	}
	if opts.Repeat < 1 {
		return exitError, fmt.Errorf("--repeat %d: must be at least 1", opts.Repeat)
	}
	if opts.Config == "-" && opts.Input == "-" {
		return exitError, errors.New("--config and --input cannot both read stdin")
	}
	if opts.Handler != nil && *opts.Handler < 0 {
		return exitError, fmt.Errorf("--handler %d: must be 0 or more", *opts.Handler)
	}
	if opts.Config == "" && (opts.Adapter != "" || opts.Handler != nil) {
		return exitError, errors.New("--adapter and --handler need --config")
	}

	var cfg policy.Config
	flagSources := len(opts.Policies) > 0 || len(opts.Bundles) > 0
	if opts.Config != "" {
		h, err := handlerFromConfig(opts.Config, opts.Adapter, opts.Handler, stdin, stderr)
		if err != nil {
			return exitError, err
		}
		cfg = h.Policy.engineConfig()
		if r := h.Policy.Remote; r != nil && !flagSources {
			if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
				return exitError, fmt.Errorf("the reset_guard handler in %s takes its policy from the remote bundle service %s, which policy eval does not contact; give --policy or --bundle", opts.Config, r.URL)
			}
			fmt.Fprintf(stderr, "warning: the reset_guard handler in %s also polls the remote bundle service %s; evaluating its local sources only\n", opts.Config, r.URL)
		}
	}
	if flagSources {
		cfg.Paths, cfg.Bundles = opts.Policies, opts.Bundles
	}
	if opts.Query != "" {
		cfg.Query = opts.Query
	}
	if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
		if opts.Config != "" {
			return exitError, fmt.Errorf("the reset_guard handler in %s names no policy paths or bundles; give --policy or --bundle", opts.Config)
		}
		return exitError, errors.New("no policy: give --config <file>, --policy <path> or --bundle <path>")
	}

	input, err := readInput(opts.Input, stdin)
	if err != nil {
		return exitError, err
	}

	engine, err := policy.New(ctx, cfg)
	if err != nil {
		return exitError, err
	}

	var (
		dec    policy.Decision
		times  = make([]time.Duration, 0, opts.Repeat)
		warned bool
	)
	for i := range opts.Repeat {
		start := time.Now()
		d, err := engine.Eval(ctx, input)
		elapsed := time.Since(start)
		if err != nil {
			return exitError, fmt.Errorf("evaluation %d of %d: %w", i+1, opts.Repeat, err)
		}
		if i == 0 {
			dec = d
		} else if !warned && !reflect.DeepEqual(d, dec) {
			warned = true
			fmt.Fprintf(stderr, "warning: evaluation %d decided differently from the first (a non-deterministic policy?); reporting the first\n", i+1)
		}
		if opts.Repeat == 1 || i > 0 {
			times = append(times, elapsed)
		}
	}

	rep := evalReport{
		Decision: evalDecision{
			Allow:   dec.Allow,
			Reasons: dec.Reasons,
			Headers: dec.Headers,
		},
		Query:          engine.Query(),
		PolicyRevision: engine.Revision(),
		EvalNS:         timings(times),
		Evaluations:    len(times),
	}
	if rep.Decision.Reasons == nil {
		rep.Decision.Reasons = []string{}
	}
	if rep.Decision.Headers == nil {
		rep.Decision.Headers = http.Header{}
	}
	if dec.Status != 0 {
		s := dec.Status
		rep.Decision.Status = &s
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return exitError, fmt.Errorf("writing the result: %w", err)
	}
	if !dec.Allow {
		return exitVerdict, nil
	}
	return exitOK, nil
}

// timings summarises evaluation durations in nanoseconds; p99 is the
// nearest-rank percentile.
func timings(ds []time.Duration) evalTimings {
	if len(ds) == 0 {
		return evalTimings{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	n := len(s)
	median := s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	rank := int(math.Ceil(0.99*float64(n))) - 1
	return evalTimings{
		Min:    int64(s[0]),
		Median: int64(median),
		P99:    int64(s[max(rank, 0)]),
		Max:    int64(s[n-1]),
	}
}

// readInput reads the input document as the policy will see it. OPA's JSON
// decoder keeps numbers as json.Number, so 427 stays an integer.
func readInput(name string, stdin io.Reader) (ast.Value, error) {
	var (
		data []byte
		err  error
	)
	if name == "-" {
		data, err = io.ReadAll(stdin)
		name = "stdin"
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("input %s: empty; want a resetguard.input/v1 JSON object", name)
	}
	var doc any
	if err := util.UnmarshalJSON(data, &doc); err != nil {
		return nil, fmt.Errorf("input %s: not valid JSON: %w", name, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf("input %s: want a JSON object (resetguard.input/v1), got %s", name, jsonKind(doc))
	}
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, fmt.Errorf("input %s: %w", name, err)
	}
	return v, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// foundHandler is one reset_guard handler object in a JSON config.
type foundHandler struct {
	path string // where in the config, e.g. apps.http.servers.srv0.routes[0].handle[0]
	raw  json.RawMessage
}

// handlerFromConfig loads a Caddy config, adapting it if need be, and
// decodes the reset_guard handler it holds (the index-th of several).
func handlerFromConfig(file, adapter string, index *int, stdin io.Reader, stderr io.Writer) (*Handler, error) {
	var (
		body []byte
		err  error
	)
	if file == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if adapter == "" {
		adapter = guessAdapter(file)
	}
	if adapter != "json" {
		a := caddyconfig.GetAdapter(adapter)
		if a == nil {
			return nil, fmt.Errorf("unrecognized config adapter: %s", adapter)
		}
		adapted, warnings, err := a.Adapt(body, map[string]any{"filename": file})
		if err != nil {
			return nil, fmt.Errorf("adapting %s with %s: %w", file, adapter, err)
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w.String())
		}
		body = adapted
	}

	var found []foundHandler
	if err := findResetGuards(body, "", &found); err != nil {
		return nil, fmt.Errorf("reading config %s as JSON: %w", file, err)
	}
	var pick foundHandler
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("no reset_guard handler in %s", file)
	case index != nil && *index >= len(found):
		return nil, fmt.Errorf("--handler %d: %s has %d reset_guard handler(s), numbered from 0:\n%s", *index, file, len(found), listHandlers(found))
	case index != nil:
		pick = found[*index]
	case len(found) > 1:
		return nil, fmt.Errorf("found %d reset_guard handlers in %s; pick one with --handler N (0-based):\n%s", len(found), file, listHandlers(found))
	default:
		pick = found[0]
	}
	h, err := decodeHandler(pick.raw)
	if err != nil {
		return nil, fmt.Errorf("%s: reset_guard handler at %s: %w", file, pick.path, err)
	}
	return h, nil
}

// guessAdapter follows Caddy's convention: a file named like a Caddyfile
// is one, anything else is JSON.
func guessAdapter(file string) string {
	base := strings.ToLower(filepath.Base(file))
	if strings.Contains(base, "caddyfile") && filepath.Ext(base) != ".json" {
		return "caddyfile"
	}
	return "json"
}

func listHandlers(found []foundHandler) string {
	var b strings.Builder
	for i, f := range found {
		paths, query := "?", ""
		if h, err := decodeHandler(f.raw); err == nil {
			paths = strings.Join(h.Policy.Paths, " ")
			query = h.Policy.Query
		}
		if query == "" {
			query = policy.DefaultQuery
		}
		fmt.Fprintf(&b, "  %d: %s (policy %s, query %s)\n", i, f.path, paths, query)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// decodeHandler decodes a handler object as Caddy does: the module name
// key removed, then strictly, so a misspelt option is an error here too.
func decodeHandler(raw json.RawMessage) (*Handler, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "handler")
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	h := new(Handler)
	if err := caddy.StrictUnmarshalJSON(b, h); err != nil {
		return nil, err
	}
	return h, nil
}

// findResetGuards appends every object with "handler": "reset_guard" below
// raw, in document order (a parent before what it contains).
func findResetGuards(raw json.RawMessage, path string, found *[]foundHandler) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return errors.New("empty document")
	}
	switch raw[0] {
	case '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		if _, err := dec.Token(); err != nil {
			return err
		}
		type member struct {
			key string
			val json.RawMessage
		}
		var members []member
		guard := false
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			var val json.RawMessage
			if err := dec.Decode(&val); err != nil {
				return err
			}
			if key == "handler" {
				var name string
				if json.Unmarshal(val, &name) == nil && name == "reset_guard" {
					guard = true
				}
			}
			members = append(members, member{key, val})
		}
		if guard {
			p := path
			if p == "" {
				p = "(top level)"
			}
			*found = append(*found, foundHandler{path: p, raw: raw})
		}
		for _, m := range members {
			p := m.key
			if path != "" {
				p = path + "." + m.key
			}
			if err := findResetGuards(m.val, p, found); err != nil {
				return err
			}
		}
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return err
		}
		for i, it := range items {
			if err := findResetGuards(it, path+"["+strconv.Itoa(i)+"]", found); err != nil {
				return err
			}
		}
	default:
		if !json.Valid(raw) {
			return errors.New("invalid JSON")
		}
	}
	return nil
}

// ---------------------------------------------------------------- test

// testOptions are the flags and arguments of `policy test`.
type testOptions struct {
	Paths   []string
	Verbose bool
	// Run keeps only tests whose full name (data.pkg.test_x) matches.
	Run string
	// Timeout bounds each test; 0 means DefaultTestTimeout.
	Timeout time.Duration
}

func newPolicyTestCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "test [--verbose] [--run <regex>] [--timeout <duration>] <path>...",
		Short: "Runs the policy's Rego unit tests",
		Long: `
Runs the Rego unit tests (rules named test_*, usually in *_test.rego files;
todo_* rules are skipped) of the given files and directories with OPA's test
runner. Directories are read recursively, with their JSON/YAML data documents.

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

	modules, store, err := tester.Load(opts.Paths, nil)
	if err != nil {
		return exitError, fmt.Errorf("loading Rego: %w", err)
	}
	if err := checkTestsPresent(opts.Paths, modules); err != nil {
		return exitError, err
	}

	ch, err := tester.NewRunner().
		SetStore(store).
		SetTimeout(opts.Timeout).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		EnableTracing(true).
		Filter(opts.Run).
		Run(ctx, modules)
	if err != nil {
		return exitError, fmt.Errorf("compiling Rego: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	if len(results) == 0 {
		if opts.Run != "" {
			return exitError, fmt.Errorf("no Rego tests found matching --run %q in %s", opts.Run, strings.Join(opts.Paths, " "))
		}
		return exitError, fmt.Errorf("no Rego tests found in %s", strings.Join(opts.Paths, " "))
	}
	// The runner works in parallel; report in source order.
	slices.SortFunc(results, func(a, b *tester.Result) int {
		if c := strings.Compare(resultFile(a), resultFile(b)); c != 0 {
			return c
		}
		if c := resultRow(a) - resultRow(b); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})

	var pass, fail, errs, skip int
	for _, r := range results {
		outcome := "PASS"
		switch {
		case r.Skip:
			skip++
			outcome = "SKIP"
		case r.Error != nil:
			errs++
			outcome = "ERROR"
		case r.Fail:
			fail++
			outcome = "FAIL"
		default:
			pass++
		}
		if !opts.Verbose && (outcome == "PASS" || outcome == "SKIP") {
			continue
		}
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
		if out := strings.TrimSpace(string(r.Output)); out != "" && (r.Fail || r.Error != nil || opts.Verbose) {
			fmt.Fprintf(stdout, "      print: %s\n", indent(out, "             "))
		}
	}

	total := len(results)
	summary := fmt.Sprintf("PASS: %d/%d", pass, total)
	code := exitOK
	if fail+errs > 0 {
		summary = fmt.Sprintf("FAIL: %d/%d", fail+errs, total)
		code = exitVerdict
	}
	var notes []string
	if fail > 0 && errs > 0 {
		notes = append(notes, fmt.Sprintf("%d failed", fail), fmt.Sprintf("%d errored", errs))
	} else if errs > 0 {
		notes = append(notes, fmt.Sprintf("%d errored", errs))
	}
	if skip > 0 {
		notes = append(notes, fmt.Sprintf("%d skipped", skip))
	}
	if len(notes) > 0 {
		summary += " (" + strings.Join(notes, ", ") + ")"
	}
	fmt.Fprintln(stdout, summary)
	return code, nil
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

func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
