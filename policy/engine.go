// Package policy owns the Open Policy Agent side of ResetGuard: it loads
// Rego modules and data documents, compiles and prepares the decision query
// once, evaluates it per request against a resetguard.input/v1 document and
// turns the result into a Decision, failing closed on anything unexpected.
package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// DefaultQuery is evaluated when the config names none.
const DefaultQuery = "data.resetguard.allow"

// DefaultTimeout bounds one evaluation when the config names none.
const DefaultTimeout = 100 * time.Millisecond

// Config says where the policy comes from and how to ask it.
type Config struct {
	// Paths are Rego files, JSON/YAML data files, or directories of them
	// (walked recursively; files ending in _test.rego are left out).
	Paths []string
	// Bundles are local OPA bundles: directories or .tar.gz files.
	Bundles []string
	// Query is the Rego query whose value is the decision.
	Query string
	// Timeout bounds one evaluation.
	Timeout time.Duration
	// AllowNetworkBuiltins permits NetworkBuiltins (http.send,
	// net.lookup_ip_addr) and remote JSON Schema references. Off, a policy
	// that calls one is refused at load.
	AllowNetworkBuiltins bool
}

// Engine is a prepared policy. It is immutable and safe for concurrent
// use; a policy change builds a new Engine.
type Engine struct {
	*compiled
	// print receives the policy's print() output; nil drops it.
	print print.Hook
}

// compiled is the prepared policy, shared by the copies of an Engine that
// differ only in where their print() output goes.
type compiled struct {
	query    string
	revision string
	timeout  time.Duration
	pq       rego.PreparedEvalQuery
}

// sources are the local policy sources, read once.
type sources struct {
	files   *loader.Result
	bundles map[string]*bundle.Bundle // by path
	hash    string                    // of files; "" when there are none
}

// New loads, compiles and prepares a policy from local sources. A Rego
// error names the file and line. At least one Rego module must be loaded:
// a policy set of data alone would leave every query undefined, and so
// every request denied, which is a configuration mistake better caught at
// load time.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	src, err := localSources(cfg)
	if err != nil {
		return nil, err
	}
	return build(ctx, cfg, src, "", nil)
}

// localSources reads a policy made of local sources only, which must hold
// at least one Rego module.
func localSources(cfg Config) (*sources, error) {
	if len(cfg.Paths) == 0 && len(cfg.Bundles) == 0 {
		return nil, errors.New("policy: no policy files or bundles configured")
	}
	src, err := loadSources(cfg)
	if err != nil {
		return nil, err
	}
	if src.moduleCount() == 0 {
		return nil, fmt.Errorf("policy: no Rego modules found in %s", strings.Join(append(cfg.Paths, cfg.Bundles...), ", "))
	}
	return src, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Query == "" {
		cfg.Query = DefaultQuery
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return cfg, checkQuery(cfg.Query)
}

func loadSources(cfg Config) (*sources, error) {
	src := &sources{bundles: map[string]*bundle.Bundle{}}
	if len(cfg.Paths) > 0 {
		if err := RefuseBundleFiles(cfg.Paths); err != nil {
			return nil, err
		}
		res, err := loader.NewFileLoader().Filtered(cfg.Paths, excludeTests)
		if err != nil {
			return nil, fmt.Errorf("policy: loading %s: %w", strings.Join(cfg.Paths, ", "), err)
		}
		src.files = res
		if src.hash, err = revisionOf(res); err != nil {
			return nil, err
		}
	}
	for _, path := range cfg.Bundles {
		b, err := loader.NewFileLoader().WithSkipBundleVerification(true).AsBundle(path)
		if err != nil {
			return nil, fmt.Errorf("policy: loading bundle %s: %w", path, err)
		}
		src.bundles[path] = b
	}
	return src, nil
}

func (s *sources) moduleCount() int {
	n := 0
	if s.files != nil {
		n += len(s.files.Modules)
	}
	for _, b := range s.bundles {
		n += len(b.Modules)
	}
	return n
}

// build compiles and prepares the local sources plus, when remote is not
// nil, the remote bundle, with the strict options every policy gets.
func build(ctx context.Context, cfg Config, src *sources, remoteName string, remote *bundle.Bundle) (*Engine, error) {
	docs := map[string]any{}
	var revs []string
	opts := append([]func(*rego.Rego){rego.Query(cfg.Query)}, cfg.strictOptions()...)
	if src.files != nil {
		docs = src.files.Documents
		for _, name := range sortedKeys(src.files.Modules) {
			opts = append(opts, rego.ParsedModule(src.files.Modules[name].Parsed))
		}
		revs = append(revs, src.hash)
	}
	bundles := map[string]*bundle.Bundle{}
	for path, b := range src.bundles {
		bundles[path] = b
	}
	if remote != nil {
		bundles[remoteName] = remote
	}
	for _, name := range sortedKeys(bundles) {
		b := bundles[name]
		if err := checkBundle(name, b, src.files); err != nil {
			return nil, err
		}
		opts = append(opts, rego.ParsedBundle(name, withoutTests(b)))
		revs = append(revs, bundleRevision(b))
	}
	pq, err := prepare(ctx, cfg, docs, opts)
	if err != nil {
		return nil, err
	}
	return &Engine{compiled: &compiled{query: cfg.Query, revision: strings.Join(revs, "+"), timeout: cfg.Timeout, pq: pq}}, nil
}

// prepare compiles the policy into a fresh store holding docs. Bundles
// are activated into the store inside a write transaction that rego needs
// to be handed; it is committed once the policy has compiled and the
// decision path is known to hold no data.
func prepare(ctx context.Context, cfg Config, docs map[string]any, opts []func(*rego.Rego)) (rego.PreparedEvalQuery, error) {
	// The store keeps its data as AST values: a policy that reads data
	// (data.handoff.bots, say) would otherwise have every read convert
	// the document from Go values again, on every evaluation. Loaded data
	// is JSON or YAML already decoded, so it converts safely once here;
	// OPA's own server does the same (--optimize-store-for-read-speed).
	store := inmem.NewFromObjectWithOpts(docs, inmem.OptReturnASTValuesOnRead(true))
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: opening the data store: %w", err)
	}
	opts = append(opts, rego.Store(store), rego.Transaction(txn))
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		store.Abort(ctx, txn)
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: compiling: %w", ExplainCompileError(err, cfg.AllowNetworkBuiltins))
	}
	if err := checkDecisionNotData(ctx, store, txn, cfg.Query); err != nil {
		store.Abort(ctx, txn)
		return rego.PreparedEvalQuery{}, err
	}
	if err := store.Commit(ctx, txn); err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("policy: activating data: %w", err)
	}
	return pq, nil
}

// bundleRevision is the manifest's revision, or a content hash for a
// bundle that names none.
func bundleRevision(b *bundle.Bundle) string {
	if b.Manifest.Revision != "" {
		return b.Manifest.Revision
	}
	h := sha256.New()
	_ = bundleDigest(h, b) // a bundle that loaded marshals
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// checkQuery accepts only a plain reference into data. Anything else could
// fail open: the value of `x := data.p.allow` is true whatever allow is.
func checkQuery(q string) error {
	body, err := ast.ParseBody(q)
	if err != nil {
		return fmt.Errorf("policy: parsing query %q: %w", q, err)
	}
	if len(body) == 1 && !body[0].Negated && len(body[0].With) == 0 {
		if t, ok := body[0].Terms.(*ast.Term); ok {
			if ref, ok := t.Value.(ast.Ref); ok && ref.HasPrefix(ast.DefaultRootRef) && ref.IsGround() {
				return nil
			}
		}
	}
	return fmt.Errorf("policy: query %q must be a plain reference into data, such as data.resetguard.allow", q)
}

func excludeTests(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// revisionOf hashes the loaded modules and data, so that every decision
// can name the exact policy it was made under.
func revisionOf(res *loader.Result) (string, error) {
	// Hash contents only, in content order, so that the same policy
	// installed under another path has the same revision.
	sums := make([]string, 0, len(res.Modules))
	for _, m := range res.Modules {
		sum := sha256.Sum256(m.Raw)
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	sort.Strings(sums)
	h := sha256.New()
	for _, s := range sums {
		h.Write([]byte(s))
	}
	data, err := json.Marshal(res.Documents) // map keys are sorted: stable
	if err != nil {
		return "", fmt.Errorf("policy: hashing data documents: %w", err)
	}
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Query is the decision query.
func (e *Engine) Query() string { return e.query }

// Revision identifies the loaded policy set.
func (e *Engine) Revision() string { return e.revision }

// WithPrintHook is a copy of e whose print() output goes to h (nil: it is
// dropped). The compiled policy is shared, not copied.
func (e *Engine) WithPrintHook(h print.Hook) *Engine {
	cp := *e
	cp.print = h
	return &cp
}

// noMetrics is the metrics set every evaluation records into: none.
var noMetrics = metrics.NoOp()

// Eval evaluates the decision query against input. A non-nil error means
// the policy could not decide (evaluation error, any built-in function
// error anywhere in the evaluation, timeout, cancelled request); the
// caller must deny. A result of the wrong shape is not an error but a
// deny carrying ReasonInvalid.
func (e *Engine) Eval(ctx context.Context, input ast.Value) (Decision, error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("policy: evaluating %s: %w", e.query, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	// The evaluation stops when ctx ends (timeout or the client leaving).
	// Without an external cancel, OPA starts a goroutine per evaluation to
	// watch ctx; a callback registered on ctx costs less and stops the
	// same way. OPA's per-evaluation metrics are never read here, so a
	// no-op set spares their map and timers.
	stop := topdown.NewCancel()
	unwatch := context.AfterFunc(ctx, stop.Cancel)
	defer unwatch()
	rs, err := e.pq.Eval(ctx, rego.EvalParsedInput(input), rego.EvalPrintHook(e.print),
		rego.EvalExternalCancel(stop), rego.EvalMetrics(noMetrics))
	if err != nil {
		if ctx.Err() != nil {
			return Decision{}, fmt.Errorf("policy: evaluating %s: %w", e.query, ctx.Err())
		}
		return Decision{}, fmt.Errorf("policy: evaluating %s: %w", e.query, err)
	}
	return parseResultSet(rs), nil
}
