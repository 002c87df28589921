package cli

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"

	"github.com/resetguard/caddy-resetguard/policy"
)

// rawQuery is any Rego query prepared over a policy's local sources,
// compiled the gateway's strict way, whose answer is OPA's result set as
// `opa eval` prints it. The gateway's engine answers only a decision,
// parsed; `policy eval` needs the value the policy wrote (decision headers
// spelt as written) and queries the gateway would not take as its
// decision query (`opa eval 'x := data.handoff.bots[_]'`).
//
// The sources must already have passed policy.New, which refuses what the
// gateway refuses (a tarball among the files, a bundle overlapping the
// files, data at the decision path); this loads them the same way again.
type rawQuery struct {
	pq      rego.PreparedEvalQuery
	timeout time.Duration
}

// prepareRawQuery loads cfg's local sources as the engine does (test files
// left out, bundles unverified and without their tests) and compiles query
// with the handler's compiler (capabilities, refused built-ins, print)
// and strict built-in errors.
func prepareRawQuery(ctx context.Context, cfg policy.Config, query string) (*rawQuery, error) {
	opts := []func(*rego.Rego){
		rego.Query(query),
		// rego's own compiler would check rules against their type
		// annotations; the handler's compiler gets the same setting.
		rego.Compiler(policy.NewCompiler(cfg.AllowNetworkBuiltins).WithUseTypeCheckAnnotations(true)),
		rego.StrictBuiltinErrors(true),
		rego.EnablePrintStatements(true),
	}
	docs := map[string]any{}
	if len(cfg.Paths) > 0 {
		res, err := loader.NewFileLoader().Filtered(cfg.Paths, excludeTestFiles)
		if err != nil {
			return nil, fmt.Errorf("loading %s: %w", strings.Join(cfg.Paths, ", "), err)
		}
		docs = res.Documents
		for _, name := range slices.Sorted(maps.Keys(res.Modules)) {
			opts = append(opts, rego.ParsedModule(res.Modules[name].Parsed))
		}
	}
	for _, path := range cfg.Bundles {
		b, err := loader.NewFileLoader().WithSkipBundleVerification(true).AsBundle(path)
		if err != nil {
			return nil, fmt.Errorf("loading bundle %s: %w", path, err)
		}
		opts = append(opts, rego.ParsedBundle(path, bundleWithoutTests(b)))
	}
	// Bundles are activated into the store in a write transaction that
	// rego must be handed when the store is the caller's.
	store := inmem.NewFromObject(docs)
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return nil, fmt.Errorf("opening the data store: %w", err)
	}
	opts = append(opts, rego.Store(store), rego.Transaction(txn))
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		store.Abort(ctx, txn)
		return nil, fmt.Errorf("compiling %s: %w", query, policy.ExplainCompileError(err, cfg.AllowNetworkBuiltins))
	}
	if err := store.Commit(ctx, txn); err != nil {
		return nil, fmt.Errorf("activating data: %w", err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = policy.DefaultTimeout
	}
	return &rawQuery{pq: pq, timeout: timeout}, nil
}

// eval evaluates the query under the policy timeout, as the engine does;
// a nil input leaves input undefined, as `opa eval` without --input.
func (q *rawQuery) eval(ctx context.Context, input ast.Value, hook print.Hook) (rego.ResultSet, error) {
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	opts := []rego.EvalOption{rego.EvalPrintHook(hook)}
	if input != nil {
		opts = append(opts, rego.EvalParsedInput(input))
	}
	rs, err := q.pq.Eval(ctx, opts...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("evaluating: %w", ctx.Err())
		}
		return nil, fmt.Errorf("evaluating: %w", err)
	}
	return rs, nil
}

// excludeTestFiles leaves *_test.rego out of a policy, as the handler does:
// a test's helper rules must not decide.
func excludeTestFiles(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// bundleWithoutTests is b without its *_test.rego modules, as the handler
// loads a bundle.
func bundleWithoutTests(b *bundle.Bundle) *bundle.Bundle {
	cp := *b
	cp.Modules = slices.DeleteFunc(slices.Clone(b.Modules), func(m bundle.ModuleFile) bool {
		return strings.HasSuffix(m.Path, "_test.rego")
	})
	return &cp
}

// isDecisionQuery reports whether query is one the handler takes as its
// decision query (policy.query): a single plain, ground reference into
// data, without `with` or negation. Anything else `policy eval` evaluates
// as `opa eval` would, without a gateway decision.
func isDecisionQuery(query string) (bool, error) {
	body, err := ast.ParseBody(query)
	if err != nil {
		return false, fmt.Errorf("parsing query %q: %w", query, err)
	}
	if len(body) != 1 || body[0].Negated || len(body[0].With) != 0 {
		return false, nil
	}
	t, ok := body[0].Terms.(*ast.Term)
	if !ok {
		return false, nil
	}
	ref, ok := t.Value.(ast.Ref)
	return ok && ref.HasPrefix(ast.DefaultRootRef) && ref.IsGround(), nil
}
