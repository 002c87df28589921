package policy

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The property of issue 16: only a well-formed {"allow": true, ..} or
// true ever forwards. The values are Rego values, handed to the real
// engine (a policy whose decision is input.v), so that OPA's own
// conversion of sets, non-string keys and numbers is part of what is
// tested; the expectation is allowsByContract, read from the README's
// contract on OPA's value types, independently of parseResult.

var (
	// contractStatus: an integer deny status, 400–599, written plainly.
	contractStatus = regexp.MustCompile(`^[45][0-9][0-9]$`)
	// contractHeaderName: an RFC 9110 token.
	contractHeaderName = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~0-9A-Za-z]+$")
)

// allowsByContract reports whether v, a policy's decision, allows.
func allowsByContract(v ast.Value) bool {
	if b, ok := v.(ast.Boolean); ok {
		return bool(b)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return false
	}
	allow, wellFormed := false, true
	obj.Foreach(func(k, x *ast.Term) {
		key, ok := k.Value.(ast.String)
		if !ok {
			wellFormed = false
			return
		}
		switch key {
		case "allow":
			allow = x.Value.Compare(ast.Boolean(true)) == 0
		case "reasons":
			wellFormed = wellFormed && stringsOnly(x.Value, func(string) bool { return true })
		case "status":
			n, ok := x.Value.(ast.Number)
			wellFormed = wellFormed && ok && contractStatus.MatchString(n.String())
		case "headers":
			wellFormed = wellFormed && contractHeaders(x.Value)
		default:
			wellFormed = false
		}
	})
	return allow && wellFormed
}

// stringsOnly: v is an array or set of strings each passing ok.
func stringsOnly(v ast.Value, ok func(string) bool) bool {
	var elems []*ast.Term
	switch c := v.(type) {
	case *ast.Array:
		c.Foreach(func(t *ast.Term) { elems = append(elems, t) })
	case ast.Set:
		elems = c.Slice()
	default:
		return false
	}
	for _, t := range elems {
		s, isString := t.Value.(ast.String)
		if !isString || !ok(string(s)) {
			return false
		}
	}
	return true
}

// contractHeaders: an object of token names, no two the same but for
// case, each a string or strings without control characters but tab.
func contractHeaders(v ast.Value) bool {
	obj, ok := v.(ast.Object)
	if !ok {
		return false
	}
	valid := func(s string) bool {
		return !strings.ContainsFunc(s, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f })
	}
	var seen []string
	good := true
	obj.Foreach(func(k, x *ast.Term) {
		name, ok := k.Value.(ast.String)
		if !ok || !contractHeaderName.MatchString(string(name)) {
			good = false
			return
		}
		for _, s := range seen {
			if strings.EqualFold(s, string(name)) {
				good = false
			}
		}
		seen = append(seen, string(name))
		if s, ok := x.Value.(ast.String); ok {
			good = good && valid(string(s))
		} else {
			good = good && stringsOnly(x.Value, valid)
		}
	})
	return good
}

// echoEngine decides input.v.
func echoEngine(t testing.TB) *Engine {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo.rego"), []byte("package echo\n\nv := input.v\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return newEngine(t, Config{Paths: []string{dir}, Query: "data.echo.v", Timeout: 10 * time.Second})
}

// checkDecisionValue evaluates v through e and fails unless the engine
// allows exactly when the contract does.
func checkDecisionValue(t *testing.T, e *Engine, v *ast.Term) {
	t.Helper()
	d, err := e.Eval(context.Background(), ast.NewObject(ast.Item(ast.StringTerm("v"), v)))
	if err != nil {
		if d.Allow {
			t.Fatalf("%v: an error came with an allow", v)
		}
		return
	}
	if want := allowsByContract(v.Value); d.Allow != want {
		t.Fatalf("decision %v: engine allows %v, the contract %v (%+v)", v, d.Allow, want, d)
	}
}

var decisionSeeds = []string{
	`true`, `false`, `"true"`, `1`, `null`, `[true]`, `{true}`,
	`{"allow": true}`, `{"allow": false}`, `{"allow": "true"}`, `{"allow": 1}`, `{"Allow": true}`,
	`{"allow": true, "reasons": ["a"]}`, `{"allow": true, "reasons": {"b", "a"}}`, `{"allow": true, "reasons": "a"}`,
	`{"allow": true, "status": 403}`, `{"allow": true, "status": 200}`, `{"allow": true, "status": 4e2}`, `{"allow": true, "status": 403.0}`,
	`{"allow": true, "headers": {"X-A": "1", "X-B": ["2", "3"]}}`, `{"allow": true, "headers": {"X-A": {"1"}}}`,
	`{"allow": true, "headers": {"x-a": "1", "X-A": "2"}}`, `{"allow": true, "headers": {"Bad Header": "1"}}`,
	`{"allow": true, "headers": {"X-A": "1\r\n"}}`, `{"allow": true, 1: "x"}`, `{"allow": true, ["allow"]: true}`,
	`{"allow": {"allow": true}}`, `{"allow": true, "reason": "typo"}`, `{{"allow": true}}`,
}

// FuzzDecisionValue: any Rego value a policy can produce, through the
// engine: allowed exactly when the contract allows.
func FuzzDecisionValue(f *testing.F) {
	for _, s := range decisionSeeds {
		f.Add(s)
	}
	e := echoEngine(f)
	f.Fuzz(func(t *testing.T, src string) {
		term, err := ast.ParseTerm(src)
		if err != nil || !ast.IsConstant(term.Value) {
			return // not a value: a reference, a call, a comprehension
		}
		checkDecisionValue(t, e, term)
	})
}

// TestDecisionValueProperty: generated decisions, most of them close to
// the contract, through the engine; enough of them allow that the
// property is not vacuous.
func TestDecisionValueProperty(t *testing.T) {
	e := echoEngine(t)
	r := rand.New(rand.NewPCG(16, 16))
	allowed := 0
	const n = 3000
	for range n {
		v := genDecision(r)
		checkDecisionValue(t, e, v)
		if allowsByContract(v.Value) {
			allowed++
		}
	}
	if allowed < n/20 {
		t.Errorf("only %d of %d generated decisions allow: the generator misses the contract", allowed, n)
	}
}

// genDecision is a random decision: mostly an object with keys of the
// contract (and near misses) and values of the right type (and near
// misses).
func genDecision(r *rand.Rand) *ast.Term {
	if r.IntN(8) == 0 {
		return pick(r, ast.BooleanTerm(true), ast.BooleanTerm(false), ast.StringTerm("true"), ast.IntNumberTerm(1),
			ast.NullTerm(), ast.ArrayTerm(ast.BooleanTerm(true)), ast.SetTerm(ast.BooleanTerm(true)))
	}
	obj := ast.NewObject()
	for _, key := range []*ast.Term{ast.StringTerm("allow"), ast.StringTerm("reasons"), ast.StringTerm("status"),
		ast.StringTerm("headers"), ast.StringTerm("Allow"), ast.StringTerm("reason"), ast.IntNumberTerm(1)} {
		main := key.Value.Compare(ast.String("allow")) == 0
		if (main && r.IntN(10) == 0) || (!main && r.IntN(4) != 0) {
			continue
		}
		obj.Insert(key, genMember(r, key))
	}
	return ast.NewTerm(obj)
}

func genMember(r *rand.Rand, key *ast.Term) *ast.Term {
	s := ast.StringTerm
	switch key.Value.Compare(ast.String("allow")) {
	case 0:
		return pick(r, ast.BooleanTerm(true), ast.BooleanTerm(true), ast.BooleanTerm(false), s("true"), ast.IntNumberTerm(1), ast.NullTerm())
	}
	switch key.Value {
	case ast.String("reasons"):
		return pick(r, ast.ArrayTerm(s("a"), s("b")), ast.SetTerm(s("a")), ast.ArrayTerm(), s("a"), ast.ArrayTerm(s("a"), ast.IntNumberTerm(1)))
	case ast.String("status"):
		return pick(r, ast.IntNumberTerm(403), ast.IntNumberTerm(599), ast.IntNumberTerm(200), ast.NumberTerm("4e2"),
			ast.NumberTerm("403.5"), s("403"), ast.IntNumberTerm(600))
	case ast.String("headers"):
		h := ast.NewObject()
		for _, name := range []string{"X-A", "x-a", "X-B", "Bad Header", ""} {
			if r.IntN(3) == 0 {
				h.Insert(s(name), pick(r, s("1"), s("1"), ast.ArrayTerm(s("1"), s("2")), ast.SetTerm(s("1")), s("a\r\nb"),
					s("tab\tok"), ast.IntNumberTerm(1), ast.ArrayTerm(s("1"), ast.BooleanTerm(true))))
			}
		}
		return ast.NewTerm(h)
	default:
		return pick(r, s("x"), ast.BooleanTerm(true), ast.ArrayTerm())
	}
}

func pick(r *rand.Rand, terms ...*ast.Term) *ast.Term { return terms[r.IntN(len(terms))] }
