package cli

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
	"reflect"
	"slices"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/policy"
)

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
	// AllowNetworkBuiltins permits http.send and net.lookup_ip_addr, as
	// the handler option policy.allow_network_builtins does (a config
	// that sets it needs no flag).
	AllowNetworkBuiltins bool
}

const evalLong = `
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

The policy is compiled and evaluated as the handler does it: any built-in
function error is an evaluation error (never "undefined"), network built-ins
are refused unless the config's policy.allow_network_builtins (or
--allow-network-builtins) permits them, and the policy's print() output goes
to stderr.

Exit status: 0 allowed, 2 denied (including an invalid policy result), 1 on
any error (unreadable config or input, policy load or evaluation error; for
an evaluation error the message says how the handler answers: its
error_status, 503 by default, with reason policy_error).
`

func newPolicyEvalCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "eval [--config <file> [--adapter <name>] [--handler <n>]] [--policy <path>]... [--bundle <path>]... [--query <ref>] --input <file|-> [--repeat <n>] [--allow-network-builtins]",
		Short: "Evaluates the decision query against one input document",
		Long:  evalLong,
		Args:  cobra.NoArgs,
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
	f.Bool("allow-network-builtins", false, "permit http.send and net.lookup_ip_addr, as policy.allow_network_builtins does")
	c.RunE = cobraRun(func(c *cobra.Command, fl caddycmd.Flags) (int, error) {
		opts, err := evalFlags(fl)
		if err != nil {
			return exitError, err
		}
		return runPolicyEval(c.Context(), opts, c.InOrStdin(), c.OutOrStdout(), c.ErrOrStderr())
	})
	return c
}

// evalFlags reads the flags of `policy eval`; --handler is told apart from
// its default so that a config with several handlers is not silently
// evaluated with the first.
func evalFlags(fl caddycmd.Flags) (evalOptions, error) {
	policies, err := fl.GetStringArray("policy")
	if err != nil {
		return evalOptions{}, err
	}
	bundles, err := fl.GetStringArray("bundle")
	if err != nil {
		return evalOptions{}, err
	}
	var handler *int
	if fl.Changed("handler") {
		n, err := fl.GetInt("handler")
		if err != nil {
			return evalOptions{}, err
		}
		handler = &n
	}
	repeat, err := fl.GetInt("repeat")
	if err != nil {
		return evalOptions{}, err
	}
	return evalOptions{
		Config:   fl.String("config"),
		Adapter:  fl.String("adapter"),
		Handler:  handler,
		Policies: policies,
		Bundles:  bundles,
		Query:    fl.String("query"),
		Input:    fl.String("input"),
		Repeat:   repeat,

		AllowNetworkBuiltins: fl.Bool("allow-network-builtins"),
	}, nil
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
	if err := checkEvalOptions(opts); err != nil {
		return exitError, err
	}
	cfg, errorStatus, err := evalConfig(opts, stdin, stderr)
	if err != nil {
		return exitError, err
	}
	input, err := readInput(opts.Input, stdin)
	if err != nil {
		return exitError, err
	}
	engine, err := policy.New(ctx, cfg)
	if err != nil {
		return exitError, err
	}
	engine = engine.WithPrintHook(printTo{stderr})
	dec, times, err := evaluate(ctx, engine, input, opts.Repeat, stderr)
	if err != nil {
		return exitError, fmt.Errorf("%w; the handler refuses such a request with %d (%s), forwarding it only under dry_run",
			err, errorStatus, refusal.PolicyError)
	}
	if err := writeEvalReport(stdout, engine, dec, times); err != nil {
		return exitError, err
	}
	if !dec.Allow {
		return exitVerdict, nil
	}
	return exitOK, nil
}

// checkEvalOptions refuses flag combinations before anything is read, so
// that a mistake is named as such rather than as a confusing load error.
func checkEvalOptions(opts evalOptions) error {
	if opts.Input == "" {
		return errors.New("--input is required (a resetguard.input/v1 JSON file, or - for stdin)")
	}
	if opts.Repeat < 1 {
		return fmt.Errorf("--repeat %d: must be at least 1", opts.Repeat)
	}
	if opts.Config == "-" && opts.Input == "-" {
		return errors.New("--config and --input cannot both read stdin")
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
// flags' sources and query in place of its own; and the status its
// handler refuses with when the policy cannot decide.
func evalConfig(opts evalOptions, stdin io.Reader, stderr io.Writer) (policy.Config, int, error) {
	var cfg policy.Config
	status := http.StatusServiceUnavailable
	flagSources := len(opts.Policies) > 0 || len(opts.Bundles) > 0
	if opts.Config != "" {
		h, err := handlerFromConfig(opts.Config, opts.Adapter, opts.Handler, stdin, stderr)
		if err != nil {
			return cfg, status, err
		}
		cfg = h.PolicySource()
		status = handlerErrorStatus(h, status)
		if url := h.RemoteBundleURL(); url != "" && !flagSources {
			if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
				return cfg, status, fmt.Errorf("the reset_guard handler in %s takes its policy from the remote bundle service %s, which policy eval does not contact; give --policy or --bundle", opts.Config, url)
			}
			fmt.Fprintf(stderr, "warning: the reset_guard handler in %s also polls the remote bundle service %s; evaluating its local sources only\n", opts.Config, url)
		}
	}
	if flagSources {
		cfg.Paths, cfg.Bundles = opts.Policies, opts.Bundles
	}
	if opts.Query != "" {
		cfg.Query = opts.Query
	}
	cfg.AllowNetworkBuiltins = cfg.AllowNetworkBuiltins || opts.AllowNetworkBuiltins
	if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
		if opts.Config != "" {
			return cfg, status, fmt.Errorf("the reset_guard handler in %s names no policy paths or bundles; give --policy or --bundle", opts.Config)
		}
		return cfg, status, errors.New("no policy: give --config <file>, --policy <path> or --bundle <path>")
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

// evaluate runs the query repeat times and returns the first decision and
// the timed durations (all but the warm-up when repeat > 1). A policy that
// decides differently across runs is reported, not hidden.
func evaluate(ctx context.Context, engine *policy.Engine, input ast.Value, repeat int, stderr io.Writer) (policy.Decision, []time.Duration, error) {
	var (
		dec    policy.Decision
		times  = make([]time.Duration, 0, repeat)
		warned bool
	)
	for i := range repeat {
		start := time.Now()
		d, err := engine.Eval(ctx, input)
		elapsed := time.Since(start)
		if err != nil {
			return dec, nil, fmt.Errorf("evaluation %d of %d: %w", i+1, repeat, err)
		}
		if i == 0 {
			dec = d
		} else if !warned && !reflect.DeepEqual(d, dec) {
			warned = true
			fmt.Fprintf(stderr, "warning: evaluation %d decided differently from the first (a non-deterministic policy?); reporting the first\n", i+1)
		}
		if repeat == 1 || i > 0 {
			times = append(times, elapsed)
		}
	}
	return dec, times, nil
}

// writeEvalReport prints the report with empty reasons and headers as []
// and {}, not null, so that a script can index them without a check.
func writeEvalReport(stdout io.Writer, engine *policy.Engine, dec policy.Decision, times []time.Duration) error {
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
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
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
