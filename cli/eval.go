package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/policy"
)

// evalOptions are the flags and argument of `policy eval`. Data, Bundles,
// Query, Input, StdinInput, Format, Fail, FailDefined and Timeout are
// `opa eval`'s and mean what they mean there; the rest are the gateway's.
type evalOptions struct {
	// Config is a Caddy config file holding a reset_guard handler ("-":
	// stdin); Adapter its adapter ("" guesses from the name: Caddyfile if
	// the name contains "caddyfile", else JSON); Handler picks one of
	// several reset_guard handlers (0-based; nil when not given).
	Config  string
	Adapter string
	Handler *int
	// Data (-d) and Bundles (-b), when either is given, replace the
	// config's local policy sources (paths and bundles).
	Data    []string
	Bundles []string
	// Query (the positional argument) replaces the config's query. A
	// plain reference into data is evaluated as the handler's decision
	// query; any other query as opa eval would, without a decision.
	Query string
	// Input is the input document file ("-": stdin); StdinInput (-I)
	// reads it from stdin. Without either, input is undefined.
	Input      string
	StdinInput bool
	// Format is "json" (the default when empty) or "pretty".
	Format string
	// Fail exits 1 when the result is undefined, FailDefined when it is
	// defined (opa eval's --fail, --fail-defined); FailDeny when the
	// handler would not forward the request (ours).
	Fail        bool
	FailDefined bool
	FailDeny    bool
	// Timeout bounds one evaluation, replacing the config's
	// policy.timeout (0: the config's, else policy.DefaultTimeout).
	Timeout time.Duration
	// Repeat is how often to evaluate; above 1 the first is a warm-up
	// left out of the timings.
	Repeat int
	// AllowNetworkBuiltins permits http.send and net.lookup_ip_addr, as
	// the handler option policy.allow_network_builtins does (a config
	// that sets it needs no flag).
	AllowNetworkBuiltins bool
}

const evalLong = `
Evaluates a query against the reset_guard policy and one input document,
as 'opa eval' does and with its flags where they overlap (-d/--data,
-b/--bundle, -i/--input, -I/--stdin-input, -f/--format, --fail,
--fail-defined, --timeout, the query as the argument), and with the
gateway's strict evaluation: any built-in function error is an evaluation
error (never "undefined"), network built-ins are refused unless the config's
policy.allow_network_builtins (or --allow-network-builtins) permits them,
rand.intn, uuid.rfc4122 and opa.runtime are always refused, and the policy's
print() output goes to stderr.

The policy comes from a Caddy config (--config: every handler object with
"handler": "reset_guard" is found; with several, --handler picks one, 0-based,
in the order of the adapted JSON), from -d/--data and -b/--bundle, or from
both: -d and -b then replace all of the config's local sources (paths and
bundles), and the query argument its query. Relative paths are relative to
the working directory, as when Caddy runs the config. A remote bundle
service in the config is not contacted: only local sources are evaluated.

The query defaults to the config's policy.query, else data.resetguard.allow.
A plain reference into data (data.resetguard.handoff.decision) is evaluated
as the handler evaluates its decision query: same loader, checks, timeout
and decision parsing, so the output also says what the handler would do.
Any other query ('data.resetguard.handoff.decision.allow == true',
'x := data.handoff.bots[_]') is evaluated as opa eval would, strictly, with
no decision.

The input (--input FILE, "-" or -I for stdin) is a resetguard.input/v1 JSON
object; see the README's "Policy contract". Without one, input is undefined.
--repeat N evaluates N times; when N > 1 the first evaluation is a warm-up,
so eval_ns and evaluations cover the other N-1.

--format json (the default) prints opa eval's JSON with the gateway's view
beside it:

  {"result": [{"expressions": [{"value": .., "text": "..", "location": {..}}]}],
   "decision": {"allow": .., "reasons": [..], "status": <int|null>, "headers": {..}},
   "query": "..", "policy_revision": "sha256:..",
   "eval_ns": {"min": .., "median": .., "p99": .., "max": ..}, "evaluations": N}

"result" is left out when the query is undefined (opa eval prints {});
"decision" only for a decision query: the handler's reading of the result
(an undefined or malformed result is a deny with policy_result_invalid), its
header names as the policy wrote them. --format pretty prints the same for
a reader.

Exit status, as opa eval: 0 when the query was evaluated, allowed or
denied; 1 when --fail is given and the result is undefined, when
--fail-defined is given and it is defined, or when --fail-deny (ours) is
given and the handler would not forward the request; 2 on any error
(flags, unreadable config or input, a policy that does not load, an
evaluation error: for that the message says how the handler answers, its
error_status, 503 by default, with reason policy_error).
`

func newPolicyEvalCommand() *cobra.Command {
	var (
		opts         evalOptions
		format       = util.NewEnumFlag(formatJSON, []string{formatJSON, formatPretty})
		handler      int
		strictErrors bool
		oldPolicy    []string
		oldQuery     string
	)
	c := &cobra.Command{
		Use:   "eval [<query>] [flags]",
		Short: "Evaluates a query (by default the decision query) against one input document, as opa eval does",
		Long:  evalLong,
		Args:  cobra.MaximumNArgs(1),
	}
	f := c.Flags()
	// opa eval's flags.
	f.StringArrayVarP(&opts.Data, "data", "d", nil, "set policy or data file(s) or directories; repeatable (replaces the config's local sources)")
	f.StringArrayVarP(&opts.Bundles, "bundle", "b", nil, "set bundle file(s) or directory path(s); repeatable (replaces the config's local sources)")
	f.StringVarP(&opts.Input, "input", "i", "", "set input file path, a resetguard.input/v1 JSON object (\"-\" for stdin)")
	f.BoolVarP(&opts.StdinInput, "stdin-input", "I", false, "read input document from stdin")
	f.VarP(format, "format", "f", "set output format")
	f.BoolVar(&opts.Fail, "fail", false, "exits with status 1 on undefined/empty result (2 on errors)")
	f.BoolVar(&opts.FailDefined, "fail-defined", false, "exits with status 1 on defined/non-empty result (2 on errors)")
	f.DurationVar(&opts.Timeout, "timeout", 0, "set eval timeout (default: the config's policy.timeout, else "+policy.DefaultTimeout.String()+")")
	f.BoolVar(&strictErrors, "strict-builtin-errors", true, "always on: built-in errors are evaluation errors, as in the gateway")
	// The gateway's.
	f.StringVarP(&opts.Config, "config", "c", "", "Caddy config file with a reset_guard handler (\"-\" for stdin)")
	f.StringVarP(&opts.Adapter, "adapter", "a", "", "config adapter (default: caddyfile if the file name contains \"Caddyfile\", else json)")
	f.IntVar(&handler, "handler", 0, "which reset_guard handler of the config to use, 0-based, when it has several")
	f.IntVarP(&opts.Repeat, "repeat", "n", 1, "evaluate this many times and report timings (the first is a warm-up when > 1)")
	f.BoolVar(&opts.FailDeny, "fail-deny", false, "exits with status 1 when the handler would refuse the request (a decision query only)")
	f.BoolVar(&opts.AllowNetworkBuiltins, "allow-network-builtins", false, "permit http.send and net.lookup_ip_addr, as policy.allow_network_builtins does")
	// Earlier spellings, kept working for a while. -p is gone: it is
	// opa eval's --partial.
	f.StringArrayVar(&oldPolicy, "policy", nil, "Rego/data file or directory")
	_ = f.MarkDeprecated("policy", "use -d/--data, as opa eval does")
	f.StringVarP(&oldQuery, "query", "q", "", "decision query")
	_ = f.MarkDeprecated("query", "give the query as the argument, as opa eval does")

	c.RunE = cobraRun(func(c *cobra.Command, fl caddycmd.Flags) (int, error) {
		if fl.Changed("strict-builtin-errors") && !strictErrors {
			return exitEvalError, errors.New("--strict-builtin-errors=false: not supported; the gateway always treats a built-in error as an evaluation error")
		}
		if fl.Changed("handler") {
			opts.Handler = &handler
		}
		opts.Data = append(opts.Data, oldPolicy...)
		if args := fl.Args(); len(args) > 0 {
			if oldQuery != "" {
				return exitEvalError, errors.New("give the query once: as the argument (--query is deprecated)")
			}
			opts.Query = args[0]
		} else {
			opts.Query = oldQuery
		}
		opts.Format = format.String()
		return runPolicyEval(c.Context(), opts, c.InOrStdin(), c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

// evalReport is what `policy eval` prints: opa eval's output ("result")
// with the gateway's view beside it.
type evalReport struct {
	Result         rego.ResultSet `json:"result,omitempty"`
	Decision       *evalDecision  `json:"decision,omitempty"`
	Query          string         `json:"query"`
	PolicyRevision string         `json:"policy_revision"`
	EvalNS         evalTimings    `json:"eval_ns"`
	Evaluations    int            `json:"evaluations"`
}

// evalDecision is the handler's reading of a decision query's result.
type evalDecision struct {
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons"`
	Status  *int     `json:"status"` // null: the policy set none (a deny is then 403)
	// Headers are keyed by the names the policy wrote, not re-cased.
	Headers map[string][]string `json:"headers"`
}

type evalTimings struct {
	Min    int64 `json:"min"`
	Median int64 `json:"median"`
	P99    int64 `json:"p99"`
	Max    int64 `json:"max"`
}

// runPolicyEval is `policy eval`, with opa eval's exit codes: 0 evaluated,
// 1 a --fail, --fail-defined or --fail-deny condition held, 2 with an
// error when it could not evaluate.
func runPolicyEval(ctx context.Context, opts evalOptions, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := checkEvalOptions(&opts); err != nil {
		return exitEvalError, err
	}
	cfg, errorStatus, err := evalConfig(opts, stdin, stderr)
	if err != nil {
		return exitEvalError, err
	}
	query := cmp.Or(opts.Query, cfg.Query, policy.DefaultQuery)
	decisionMode, err := isDecisionQuery(query)
	if err != nil {
		return exitEvalError, err
	}
	if opts.FailDeny && !decisionMode {
		return exitEvalError, fmt.Errorf("--fail-deny needs a decision query, a plain reference into data such as %s; %q is not one", policy.DefaultQuery, query)
	}
	if decisionMode {
		cfg.Query = query
	}
	var input ast.Value
	if opts.Input != "" || opts.StdinInput {
		if input, err = readInput(cmp.Or(opts.Input, "-"), stdin); err != nil {
			return exitEvalError, err
		}
	}
	// The handler's engine loads and checks the policy as the gateway
	// does, for any query: what does not load here does not load there.
	engine, err := policy.New(ctx, cfg)
	if err != nil {
		return exitEvalError, err
	}
	raw, err := prepareRawQuery(ctx, cfg, query)
	if err != nil {
		return exitEvalError, err
	}
	rep := evalReport{Query: query, PolicyRevision: engine.Revision()}
	var times []time.Duration
	if decisionMode {
		var dec policy.Decision
		dec, times, err = evaluateDecision(ctx, engine.WithPrintHook(printTo{stderr}), input, opts.Repeat, stderr)
		if err == nil {
			// Once more, for the value the policy wrote; its print()
			// output was shown already.
			rep.Result, err = raw.eval(ctx, input, nil)
		}
		if err != nil {
			return exitEvalError, gatewayAnswer(err, errorStatus)
		}
		rep.Decision = decisionOf(dec, rep.Result, stderr)
	} else {
		rep.Result, times, err = evaluateQuery(ctx, raw, input, opts.Repeat, stderr)
		if err != nil {
			return exitEvalError, err
		}
	}
	rep.EvalNS, rep.Evaluations = timings(times), len(times)
	if err := writeEvalReport(stdout, opts.Format, rep); err != nil {
		return exitEvalError, err
	}
	defined := len(rep.Result) > 0
	switch {
	case opts.Fail && !defined, opts.FailDefined && defined:
		return exitEvalFail, nil
	case opts.FailDeny && !rep.Decision.Allow:
		return exitEvalFail, nil
	}
	return exitOK, nil
}

// gatewayAnswer adds to an evaluation error of the decision query what the
// handler does with such a request.
func gatewayAnswer(err error, errorStatus int) error {
	return fmt.Errorf("%w; the handler refuses such a request with %d (%s), forwarding it only under dry_run",
		err, errorStatus, refusal.PolicyError)
}

// checkEvalOptions refuses flag combinations before anything is read, so
// that a mistake is named as such rather than as a confusing load error.
func checkEvalOptions(opts *evalOptions) error {
	if opts.Repeat < 1 {
		return fmt.Errorf("--repeat %d: must be at least 1", opts.Repeat)
	}
	switch opts.Format {
	case "":
		opts.Format = formatJSON
	case formatJSON, formatPretty:
	default:
		return fmt.Errorf("--format %q: want json or pretty", opts.Format)
	}
	if opts.Fail && opts.FailDefined {
		return errors.New("specify --fail or --fail-defined but not both")
	}
	if opts.StdinInput && opts.Input != "" {
		return errors.New("specify --stdin-input or --input but not both")
	}
	if opts.Config == "-" && (opts.Input == "-" || opts.StdinInput) {
		return errors.New("--config and --input cannot both read stdin")
	}
	if opts.Timeout < 0 {
		return fmt.Errorf("--timeout %s: must be positive", opts.Timeout)
	}
	if opts.Handler != nil && *opts.Handler < 0 {
		return fmt.Errorf("--handler %d: must be 0 or more", *opts.Handler)
	}
	if opts.Config == "" && (opts.Adapter != "" || opts.Handler != nil) {
		return errors.New("--adapter and --handler need --config")
	}
	return nil
}

// evalConfig is the policy to evaluate: the config's handler's, with the
// flags' sources, query and timeout in place of its own; and the status its
// handler refuses with when the policy cannot decide.
func evalConfig(opts evalOptions, stdin io.Reader, stderr io.Writer) (policy.Config, int, error) {
	var cfg policy.Config
	status := http.StatusServiceUnavailable
	flagSources := len(opts.Data) > 0 || len(opts.Bundles) > 0
	if opts.Config != "" {
		h, err := handlerFromConfig(opts.Config, opts.Adapter, opts.Handler, stdin, stderr)
		if err != nil {
			return cfg, status, err
		}
		cfg = h.PolicySource()
		status = handlerErrorStatus(h, status)
		if url := h.RemoteBundleURL(); url != "" && !flagSources {
			if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
				return cfg, status, fmt.Errorf("the reset_guard handler in %s takes its policy from the remote bundle service %s, which policy eval does not contact; give -d/--data or -b/--bundle", opts.Config, url)
			}
			fmt.Fprintf(stderr, "warning: the reset_guard handler in %s also polls the remote bundle service %s; evaluating its local sources only\n", opts.Config, url)
		}
	}
	if flagSources {
		cfg.Paths, cfg.Bundles = opts.Data, opts.Bundles
	}
	if opts.Timeout > 0 {
		cfg.Timeout = opts.Timeout
	}
	cfg.AllowNetworkBuiltins = cfg.AllowNetworkBuiltins || opts.AllowNetworkBuiltins
	if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
		if opts.Config != "" {
			return cfg, status, fmt.Errorf("the reset_guard handler in %s names no policy paths or bundles; give -d/--data or -b/--bundle", opts.Config)
		}
		return cfg, status, errors.New("no policy: give --config <file>, -d/--data <path> or -b/--bundle <path>")
	}
	return cfg, status, nil
}

// handlerErrorStatus is the handler's policy.error_status, or def when it
// sets none. PolicySource carries the engine's config only; the decoded
// handler is a JSON config object, so its JSON form has the field.
func handlerErrorStatus(h PolicySource, def int) int {
	raw, err := json.Marshal(h)
	if err != nil {
		return def
	}
	var cfg struct {
		Policy struct {
			ErrorStatus int `json:"error_status"`
		} `json:"policy"`
	}
	if json.Unmarshal(raw, &cfg) != nil || cfg.Policy.ErrorStatus == 0 {
		return def
	}
	return cfg.Policy.ErrorStatus
}

// printTo is the policy's print() hook for `policy eval`: one line per
// call on stderr, after the place in the policy that printed it. It never
// fails: a write error must not become an evaluation error.
type printTo struct{ w io.Writer }

func (p printTo) Print(pc print.Context, msg string) error {
	loc := "?"
	if pc.Location != nil {
		loc = pc.Location.String()
	}
	fmt.Fprintf(p.w, "print: %s: %s\n", loc, msg)
	return nil
}

// evaluateDecision runs the handler's engine repeat times and returns the
// first decision and the timed durations (all but the warm-up when repeat
// > 1). A policy that decides differently across runs is reported, not
// hidden.
func evaluateDecision(ctx context.Context, engine *policy.Engine, input ast.Value, repeat int, stderr io.Writer) (policy.Decision, []time.Duration, error) {
	var first policy.Decision
	times, err := repeatEval(repeat, stderr, func(i int) (bool, error) {
		d, err := engine.Eval(ctx, input)
		if err != nil {
			return false, err
		}
		if i == 0 {
			first = d
		}
		return reflect.DeepEqual(d, first), nil
	})
	return first, times, err
}

// evaluateQuery is evaluateDecision for a query the handler would not take
// as its decision query: OPA's result set, strictly evaluated.
func evaluateQuery(ctx context.Context, q *rawQuery, input ast.Value, repeat int, stderr io.Writer) (rego.ResultSet, []time.Duration, error) {
	var first rego.ResultSet
	times, err := repeatEval(repeat, stderr, func(i int) (bool, error) {
		rs, err := q.eval(ctx, input, printTo{stderr})
		if err != nil {
			return false, err
		}
		if i == 0 {
			first = rs
		}
		return reflect.DeepEqual(rs, first), nil
	})
	return first, times, err
}

// repeatEval times repeat calls of eval, which says whether its answer is
// the first one's, and warns once when it is not.
func repeatEval(repeat int, stderr io.Writer, eval func(i int) (same bool, err error)) ([]time.Duration, error) {
	times := make([]time.Duration, 0, repeat)
	warned := false
	for i := range repeat {
		start := time.Now()
		same, err := eval(i)
		elapsed := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("evaluation %d of %d: %w", i+1, repeat, err)
		}
		if !same && !warned {
			warned = true
			fmt.Fprintf(stderr, "warning: evaluation %d decided differently from the first (a non-deterministic policy?); reporting the first\n", i+1)
		}
		if repeat == 1 || i > 0 {
			times = append(times, elapsed)
		}
	}
	return times, nil
}

// decisionOf is the report's decision: the engine's, with the header names
// the policy wrote (the engine keys them canonically, as the gateway sets
// them; the author should see their own spelling). Empty reasons and
// headers are [] and {}, not null, so that a script can index them without
// a check.
func decisionOf(dec policy.Decision, rs rego.ResultSet, stderr io.Writer) *evalDecision {
	var value any
	if len(rs) == 1 && len(rs[0].Expressions) == 1 {
		value = rs[0].Expressions[0].Value
	}
	if again := policy.ParseResult(value); !reflect.DeepEqual(again, dec) {
		// Two evaluations of one deterministic policy agree; say so
		// when they do not rather than print a mixed report.
		fmt.Fprintln(stderr, "warning: the policy's result differs between two evaluations (a non-deterministic policy?); the decision is the handler's first")
	}
	out := &evalDecision{
		Allow:   dec.Allow,
		Reasons: dec.Reasons,
		Headers: writtenHeaders(value, dec),
	}
	if out.Reasons == nil {
		out.Reasons = []string{}
	}
	if dec.Status != 0 {
		s := dec.Status
		out.Status = &s
	}
	return out
}

// writtenHeaders is the decision's headers under the names in value, the
// policy's result; {} when the handler sets none (no headers, or a result
// it does not accept).
func writtenHeaders(value any, dec policy.Decision) map[string][]string {
	out := map[string][]string{}
	if len(dec.Headers) == 0 {
		return out
	}
	obj, _ := value.(map[string]any)
	written, _ := obj["headers"].(map[string]any)
	for name, v := range written {
		switch t := v.(type) {
		case string:
			out[name] = []string{t}
		case []any:
			vals := make([]string, 0, len(t))
			for _, x := range t {
				s, _ := x.(string)
				vals = append(vals, s)
			}
			out[name] = vals
		}
	}
	return out
}

// writeEvalReport prints the report as JSON or for a reader.
func writeEvalReport(stdout io.Writer, format string, rep evalReport) error {
	var err error
	if format == formatPretty {
		err = writePretty(stdout, rep)
	} else {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	}
	if err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
}

// writePretty is --format pretty: the decision first, then the query, the
// revision, the timings and the result's value.
func writePretty(w io.Writer, rep evalReport) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-10s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	if d := rep.Decision; d != nil {
		verdict := "allow"
		if !d.Allow {
			status := http.StatusForbidden
			if d.Status != nil {
				status = *d.Status
			}
			verdict = fmt.Sprintf("deny (%d)", status)
		}
		line("decision", "%s", verdict)
		line("reasons", "%s", cmp.Or(strings.Join(d.Reasons, ", "), "-"))
		if len(d.Headers) == 0 {
			line("headers", "-")
		}
		for i, name := range slices.Sorted(maps.Keys(d.Headers)) {
			label := ""
			if i == 0 {
				label = "headers:"
			}
			fmt.Fprintf(&b, "%-10s %s: %s\n", label, name, strings.Join(d.Headers[name], ", "))
		}
	}
	line("query", "%s", rep.Query)
	line("revision", "%s", rep.PolicyRevision)
	if t := rep.EvalNS; rep.Evaluations == 1 {
		line("eval", "%s", time.Duration(t.Min))
	} else {
		line("eval", "min %s, median %s, p99 %s, max %s (%d evaluations after a warm-up)",
			time.Duration(t.Min), time.Duration(t.Median), time.Duration(t.P99), time.Duration(t.Max), rep.Evaluations)
	}
	if len(rep.Result) == 0 {
		line("result", "undefined")
	} else {
		var v any = rep.Result
		if len(rep.Result) == 1 && len(rep.Result[0].Expressions) == 1 && len(rep.Result[0].Bindings) == 0 {
			v = rep.Result[0].Expressions[0].Value
		}
		out, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		line("result", "")
		b.Write(out)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
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

// jsonKind names a decoded JSON value for an error message.
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
