package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// The gateway, `policy eval` and `policy test` compile and evaluate a
// policy the same, strict way, so that what an author tests is what the
// gateway decides:
//
//   - every built-in function error is an evaluation error (OPA's default
//     turns it into "undefined", and `not` over an undefined expression
//     is true: a policy could fail open);
//   - built-ins that reach the network are refused at load unless
//     Config.AllowNetworkBuiltins is set, and some are always refused;
//   - print() is compiled in everywhere, so that its arguments are
//     evaluated (and may raise errors) the same way whether or not
//     anyone reads the output.

// NetworkBuiltins reach the network. They are refused at load unless
// Config.AllowNetworkBuiltins is set; then they run under the evaluation
// timeout, whose context they honour.
var NetworkBuiltins = []string{"http.send", "net.lookup_ip_addr"}

// RefusedBuiltins are refused at load whatever the config says.
// rand.intn and uuid.rfc4122 make the decision differ between two
// evaluations of the same request, so that it can be neither tested nor
// replayed from the audit record (time.now_ns stays allowed: a decision
// may depend on the time, which the input also carries). opa.runtime
// describes an OPA server's environment; the gateway runs none, so it
// would answer {} and a policy written against it would decide on
// nothing.
var RefusedBuiltins = []string{"rand.intn", "uuid.rfc4122", "opa.runtime"}

// unsafeBuiltins is what the compiler refuses for cfg.
func (cfg Config) unsafeBuiltins() map[string]struct{} {
	refused := slices.Clone(RefusedBuiltins)
	if !cfg.AllowNetworkBuiltins {
		refused = append(refused, NetworkBuiltins...)
	}
	m := make(map[string]struct{}, len(refused))
	for _, name := range refused {
		m[name] = struct{}{}
	}
	return m
}

// capabilities are OPA's for this version with, unless network built-ins
// are allowed, an empty network allow-list: that also keeps
// json.match_schema, json.verify_schema and schema annotations from
// fetching a remote $ref, which no built-in name would reveal.
func (cfg Config) capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	if !cfg.AllowNetworkBuiltins {
		c.AllowNet = []string{} // non-nil and empty: no host at all
	}
	return c
}

// strictOptions are the rego options every compiled policy gets.
func (cfg Config) strictOptions() []func(*rego.Rego) {
	return []func(*rego.Rego){
		rego.StrictBuiltinErrors(true),
		rego.EnablePrintStatements(true),
		rego.Capabilities(cfg.capabilities()),
		rego.UnsafeBuiltins(cfg.unsafeBuiltins()),
	}
}

// NewCompiler is a Rego compiler with the gateway's capabilities, refused
// built-ins and print statements, for tools that compile a policy
// themselves (`policy test` hands it to OPA's test runner). Built-in
// errors are a matter of evaluation: the caller raises them too.
func NewCompiler(allowNetworkBuiltins bool) *ast.Compiler {
	cfg := Config{AllowNetworkBuiltins: allowNetworkBuiltins}
	return ast.NewCompiler().
		WithCapabilities(cfg.capabilities()).
		WithUnsafeBuiltins(cfg.unsafeBuiltins()).
		WithEnablePrintStatements(true)
}

// ExplainCompileError adds to a compile error that names a refused
// built-in why it is refused and what would permit it, since OPA's own
// message ("unsafe built-in function calls in expression: http.send")
// does not say.
func ExplainCompileError(err error, allowNetworkBuiltins bool) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var notes []string
	if !allowNetworkBuiltins {
		for _, name := range NetworkBuiltins {
			if strings.Contains(msg, name) {
				notes = append(notes, name+" reaches the network: refused unless policy.allow_network_builtins is set")
			}
		}
	}
	for _, name := range RefusedBuiltins {
		if strings.Contains(msg, name) {
			notes = append(notes, name+" is never allowed (see the README's policy contract)")
		}
	}
	if len(notes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(notes, "; "))
}

// checkDecisionNotData refuses a policy set whose data documents (from
// files or a bundle) hold a value at or below the decision query's path:
// the decision would be, or be merged with, a static document instead of
// coming from a rule. OPA already refuses data at a rule's own path; this
// also covers a query that names a package, and a path no rule defines.
func checkDecisionNotData(ctx context.Context, store storage.Store, txn storage.Transaction, query string) error {
	ref, err := ast.ParseRef(query)
	if err != nil {
		return fmt.Errorf("policy: parsing query %q: %w", query, err)
	}
	path, err := storage.NewPathForRef(ref)
	if err != nil {
		// A key no base document can have (a composite, a boolean):
		// there is no data there.
		return nil
	}
	_, err = store.Read(ctx, txn, path)
	switch {
	case storage.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("policy: reading data at %s: %w", query, err)
	}
	return fmt.Errorf("policy: data documents hold a value at %s, the decision query's path: the decision must come from a Rego rule, not from data a file or bundle supplies", query)
}
