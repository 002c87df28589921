package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

const (
	handoffDir   = "../testdata/policies/handoff"
	handoffQuery = "data.resetguard.handoff.decision"
	brokenDir    = "../testdata/broken_policy"
	caddyPolicy  = "../testdata/caddy/policy.rego"
	caddyQuery   = "data.resetguard.test.decision"
)

func newEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return e
}

func handoffEngine(t testing.TB) *Engine {
	t.Helper()
	return newEngine(t, Config{Paths: []string{handoffDir}, Query: handoffQuery})
}

// policyDir writes files (name → content) into a fresh temporary directory.
func policyDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

// copyDir copies the regular files of src (not recursively) into a fresh
// temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), string(b))
	}
	return dst
}

// botInput is the request of the onsite bot "chatbot" (Basic credential,
// no tenant), which the handoff policy allows.
func botInput() *Input {
	return &Input{
		Action:    "chat_session.reset",
		Route:     "rest",
		SessionID: 427,
		Tenant:    "",
		Request: Request{
			ID:       "req-1",
			Method:   "POST",
			Path:     "/SuperOffice/api/v1/ChatSession/427/Reset",
			Host:     "crm.example.com",
			RemoteIP: "192.0.2.10",
			Headers:  map[string][]string{"user-agent": {"bot/1.0"}},
		},
		Credential: Credential{Scheme: "basic", Kind: "basic", Fingerprint: "fp", Username: "chatbot"},
		Principal:  Principal{Source: "none"},
		Time:       time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
}

// mustValue converts a Go value into an OPA value, as an ad-hoc input.
func mustValue(t testing.TB, v any) ast.Value {
	t.Helper()
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return val
}

func TestNewHandoff(t *testing.T) {
	e := handoffEngine(t)
	if got := e.Query(); got != handoffQuery {
		t.Errorf("Query() = %q, want %q", got, handoffQuery)
	}
	rev := e.Revision()
	if !strings.HasPrefix(rev, "sha256:") || len(rev) <= len("sha256:") {
		t.Errorf("Revision() = %q, want sha256:<hex>", rev)
	}
	if strings.Trim(strings.TrimPrefix(rev, "sha256:"), "0123456789abcdef") != "" {
		t.Errorf("Revision() = %q: not lower-case hex after the prefix", rev)
	}
	if again := handoffEngine(t).Revision(); again != rev {
		t.Errorf("same files, different revisions: %q and %q", rev, again)
	}
}

func TestNewDefaults(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package resetguard\n\nallow := true\n"})
	e := newEngine(t, Config{Paths: []string{dir}})
	if e.Query() != DefaultQuery {
		t.Errorf("Query() = %q, want the default %q", e.Query(), DefaultQuery)
	}
	d, err := e.Eval(context.Background(), botInput().Value())
	if err != nil || !d.Allow {
		t.Errorf("Eval of the default query = %+v, %v; want an allow", d, err)
	}
}

func TestRevisionFollowsContent(t *testing.T) {
	dir := copyDir(t, handoffDir)
	cfg := Config{Paths: []string{dir}, Query: handoffQuery}
	rev1 := newEngine(t, cfg).Revision()
	if rev2 := newEngine(t, cfg).Revision(); rev2 != rev1 {
		t.Fatalf("same files loaded twice: revisions %q and %q", rev1, rev2)
	}

	// A test file is not part of the policy: adding one changes nothing.
	writeFile(t, filepath.Join(dir, "extra_test.rego"), "package resetguard.handoff_test\n\ntest_x if true\n")
	if rev := newEngine(t, cfg).Revision(); rev != rev1 {
		t.Errorf("adding a _test.rego file changed the revision: %q → %q", rev1, rev)
	}

	// A data document is part of the policy: adding one is a different
	// policy. (The example keeps its own data in data.rego, a module, so
	// that it lands at data.handoff whichever folder is loaded; a JSON
	// document beside it must not redefine those rules.)
	data := filepath.Join(dir, "data.json")
	writeFile(t, data, `{"handoff_notes": {"owner": "ops"}}`)
	revData := newEngine(t, cfg).Revision()
	if revData == rev1 {
		t.Errorf("adding data.json kept the revision %q", rev1)
	}

	// So is a changed module, even by a comment.
	rego := filepath.Join(dir, "handoff.rego")
	b, err := os.ReadFile(rego)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, rego, string(b)+"\n# changed\n")
	if rev := newEngine(t, cfg).Revision(); rev == revData || rev == rev1 {
		t.Errorf("changing handoff.rego kept the revision %q", rev)
	}
}

func TestNewErrors(t *testing.T) {
	dataOnly := policyDir(t, map[string]string{"data.json": `{"handoff": {"bots": []}}`})
	testsOnly := policyDir(t, map[string]string{"p_test.rego": "package p_test\n\ntest_x if true\n"})
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error
	}{
		{"no paths", Config{Query: handoffQuery}, "no policy files"},
		{"empty path list", Config{Paths: []string{}, Query: handoffQuery}, "no policy files"},
		{"data only", Config{Paths: []string{dataOnly}, Query: handoffQuery}, "no Rego modules"},
		{"data file only", Config{Paths: []string{filepath.Join(dataOnly, "data.json")}, Query: handoffQuery}, "no Rego modules"},
		{"test files only", Config{Paths: []string{testsOnly}, Query: handoffQuery}, "no Rego modules"},
		{"empty dir", Config{Paths: []string{t.TempDir()}, Query: handoffQuery}, "no Rego modules"},
		{"missing path", Config{Paths: []string{filepath.Join(t.TempDir(), "nope.rego")}, Query: handoffQuery}, "nope.rego"},
		{"query syntax error", Config{Paths: []string{handoffDir}, Query: "data.resetguard.handoff.decision["}, "parsing query"},
		{"query garbage", Config{Paths: []string{handoffDir}, Query: "allow if {"}, "parsing query"},
		{"query undefined function", Config{Paths: []string{handoffDir}, Query: "no_such_function(input)"}, "no_such_function"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New(ctx, tt.cfg)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.cfg, e)
			}
			if e != nil {
				t.Errorf("New returned an engine alongside the error %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestNewRegoErrorsNameFileAndLine loads the fixtures in
// testdata/broken_policy: each error must say file:line, so an operator
// can find the mistake from the config-load error alone.
func TestNewRegoErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		file string
		line int
		kind string
	}{
		{"syntax.rego", 7, "rego_parse_error"},
		{"unsafe.rego", 8, "rego_unsafe_var_error"},
		{"typeerr.rego", 7, "rego_type_error"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(brokenDir, tt.file)
			_, err := New(context.Background(), Config{Paths: []string{path}, Query: "data.resetguard.broken"})
			if err == nil {
				t.Fatalf("New(%s): no error", path)
			}
			msg := err.Error()
			if want := fmt.Sprintf("%s:%d", tt.file, tt.line); !strings.Contains(msg, want) {
				t.Errorf("error does not name %s:\n%s", want, msg)
			}
			if !strings.Contains(msg, tt.kind) {
				t.Errorf("error does not say %s:\n%s", tt.kind, msg)
			}
		})
	}
	// A broken file among good ones still fails the whole load.
	_, err := New(context.Background(), Config{
		Paths: []string{handoffDir, filepath.Join(brokenDir, "unsafe.rego")},
		Query: handoffQuery,
	})
	if err == nil || !strings.Contains(err.Error(), "unsafe.rego:8") {
		t.Errorf("handoff + unsafe.rego: error %v, want one naming unsafe.rego:8", err)
	}
}

// TestQueryMustBeAPlainDataRef: queries that are not a single reference
// into data are refused at load time, because some of them fail open.
func TestQueryMustBeAPlainDataRef(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": "package p\n\nallow := false\n\nlist := [true]\n"})
	for _, q := range []string{
		"x := data.p.allow",          // the value of an assignment is true: would allow everything
		"x = data.p.allow",           // likewise for unification
		"data.p.list[_]",             // several results
		"data.p.allow; data.p.allow", // several expressions
		"not data.p.allow",
		"input.not_there",
		"data.p.allow with input as {}",
		"true",
	} {
		t.Run(q, func(t *testing.T) {
			_, err := New(context.Background(), Config{Paths: []string{dir}, Query: q})
			if err == nil || !strings.Contains(err.Error(), "plain reference into data") {
				t.Fatalf("New(query %q) = %v, want a refusal", q, err)
			}
		})
	}
}

// TestTestFilesNotLoaded: a *_test.rego file next to the policy is left
// out of the evaluated policy, even when it would not compile with it.
func TestTestFilesNotLoaded(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"p.rego": "package p\n\ndecision := true\n",
		// Same rule, other value: together they could not be evaluated.
		"p_test.rego": "package p\n\ndecision := false\n\ntest_it if decision\n",
		// And one that does not even parse.
		"sub/q_test.rego": "package q\n\nthis is not rego {{\n",
	})
	e := newEngine(t, Config{Paths: []string{dir}, Query: "data.p.decision"})
	d, err := e.Eval(context.Background(), botInput().Value())
	if err != nil || !reflect.DeepEqual(d, Decision{Allow: true}) {
		t.Errorf("Eval = %#v, %v; want an allow from p.rego alone", d, err)
	}
	if _, err := New(context.Background(), Config{Paths: []string{dir}, Query: "data.p.test_it"}); err != nil {
		t.Fatalf("querying a test-only rule must compile (undefined at run time): %v", err)
	}

	// Control: the same two rules, both loaded, do not evaluate, so the
	// test above really showed the exclusion.
	both := policyDir(t, map[string]string{
		"p.rego": "package p\n\ndecision := true\n",
		"q.rego": "package p\n\ndecision := false\n",
	})
	if e, err := New(context.Background(), Config{Paths: []string{both}, Query: "data.p.decision"}); err == nil {
		if d, err := e.Eval(context.Background(), botInput().Value()); err == nil {
			t.Fatalf("control: conflicting modules evaluated to %+v", d)
		}
	}
}
