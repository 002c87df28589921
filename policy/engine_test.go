package policy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

const (
	handoffDir   = "../testdata/policies/handoff"
	handoffQuery = "data.resetguard.handoff.decision"
	brokenDir    = "../testdata/policies/broken"
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

	// A changed data document is a different policy.
	data := filepath.Join(dir, "data.json")
	writeFile(t, data, `{"handoff": {"bots": [], "protected_sessions": [1]}}`)
	revData := newEngine(t, cfg).Revision()
	if revData == rev1 {
		t.Errorf("changing data.json kept the revision %q", rev1)
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
// testdata/policies/broken: each error must say file:line, so an operator
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

func TestEvalHandoff(t *testing.T) {
	e := handoffEngine(t)
	tests := []struct {
		name string
		mod  func(*Input)
		want Decision
	}{
		{"listed onsite bot", func(*Input) {}, Decision{
			Allow:   true,
			Reasons: []string{"listed_bot"},
			Headers: http.Header{"X-Resetguard-Bot": {"onsite-chatbot"}},
		}},
		{"listed tenant bot, tenant case-insensitive", func(in *Input) {
			in.Tenant = "cust12345"
			in.Credential.Username = "cust12345-bot"
		}, Decision{
			Allow:   true,
			Reasons: []string{"listed_bot"},
			Headers: http.Header{"X-Resetguard-Bot": {"cust12345-bot"}},
		}},
		{"unlisted user", func(in *Input) { in.Credential.Username = "agent7" }, Decision{
			Reasons: []string{"caller_not_a_listed_bot"},
		}},
		{"bot outside its tenant", func(in *Input) { in.Tenant = "Cust99999" }, Decision{
			Reasons: []string{"caller_not_a_listed_bot"},
		}},
		{"credential tenant mismatch", func(in *Input) { in.Credential.Tenant = "Cust1" }, Decision{
			Reasons: []string{"tenant_mismatch"},
		}},
		{"protected session", func(in *Input) { in.SessionID = 1 }, Decision{
			Reasons: []string{"session_protected"},
		}},
		{"all reasons, sorted", func(in *Input) {
			in.SessionID = 1
			in.Credential.Tenant = "Cust1"
			in.Action = "chat_session.delete"
		}, Decision{
			Reasons: []string{"session_protected", "tenant_mismatch", "wrong_action"},
		}},
		{"bearer caller without a known principal", func(in *Input) {
			in.Tenant = "Cust12345"
			in.Credential = Credential{Scheme: "bearer", Kind: "superoffice_token", Fingerprint: "fp", Tenant: "Cust12345"}
		}, Decision{
			Reasons: []string{"caller_not_a_listed_bot"},
		}},
		{"no session id", func(in *Input) { in.SessionID = 0 }, Decision{
			Allow:   true,
			Reasons: []string{"listed_bot"},
			Headers: http.Header{"X-Resetguard-Bot": {"onsite-chatbot"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := botInput()
			tt.mod(in)
			got, err := e.Eval(context.Background(), in.Value())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestEvalCaddyTestPolicy(t *testing.T) {
	e := newEngine(t, Config{Paths: []string{caddyPolicy}, Query: caddyQuery})
	in := func(id int32, user string) *Input {
		i := botInput()
		i.SessionID = id
		i.Credential.Username = user
		return i
	}
	ctx := context.Background()

	// Session 13 makes two rules produce conflicting values: an evaluation
	// error, which the caller must treat as a deny.
	d, err := e.Eval(ctx, in(13, "alice").Value())
	if err == nil {
		t.Fatalf("session 13: Eval = %+v, nil; want a conflict error", d)
	}
	if d.Allow {
		t.Errorf("session 13: an error came with an allow: %+v", d)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("session 13: a conflict reported as a timeout: %v", err)
	}
	if !strings.Contains(err.Error(), caddyQuery) {
		t.Errorf("session 13: error %q does not name the query", err)
	}

	tests := []struct {
		name string
		in   *Input
		want Decision
	}{
		{"ordinary caller", in(427, "alice"), Decision{Allow: true, Reasons: []string{"ok"}, Headers: http.Header{"X-Resetguard-Decision": {"allow"}}}},
		{"mallory", in(427, "mallory"), Decision{Reasons: []string{"mallory_refused"}, Status: 403, Headers: http.Header{"X-Denied-By": {"policy"}}}},
		{"locked session", in(666, "alice"), Decision{Reasons: []string{"session_locked"}, Status: 423}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Eval(ctx, tt.in.Value())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// slowPolicy counts input.n × input.n pairs, which takes seconds for
// n = 10000, and answers at once when input.fast is true.
const slowPolicy = `package slow

default decision := false

decision if input.fast

decision if {
	not input.fast
	n := count([1 | some i in numbers.range(1, input.n); some j in numbers.range(1, input.n)])
	n > 0
}
`

func TestEvalTimeout(t *testing.T) {
	dir := policyDir(t, map[string]string{"slow.rego": slowPolicy})
	e := newEngine(t, Config{Paths: []string{dir}, Query: "data.slow.decision", Timeout: 10 * time.Millisecond})

	start := time.Now()
	d, err := e.Eval(context.Background(), mustValue(t, map[string]any{"n": 10000, "fast": false}))
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("slow policy: Eval = %+v, nil after %v; want a timeout", d, elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow policy: error %v does not wrap context.DeadlineExceeded", err)
	}
	if d.Allow {
		t.Errorf("slow policy: a timeout came with an allow: %+v", d)
	}
	if elapsed > time.Second {
		t.Errorf("slow policy: Eval took %v with a 10ms timeout", elapsed)
	}

	// The engine is still usable after a timeout.
	d, err = e.Eval(context.Background(), mustValue(t, map[string]any{"fast": true}))
	if err != nil || !d.Allow {
		t.Errorf("fast input after a timeout: %+v, %v; want an allow", d, err)
	}
}

func TestEvalCancelledContext(t *testing.T) {
	dir := policyDir(t, map[string]string{"slow.rego": slowPolicy})
	e := newEngine(t, Config{Paths: []string{dir}, Query: "data.slow.decision", Timeout: time.Minute})

	// A request cancelled while the policy runs: the evaluation stops and
	// the error says why. (A context cancelled before Eval is left out: see
	// the report; a fast policy may still return its decision.)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	d, err := e.Eval(ctx, mustValue(t, map[string]any{"n": 10000, "fast": false}))
	if d.Allow {
		t.Errorf("cancelled mid-evaluation: an allow: %+v", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled mid-evaluation: error %v does not wrap context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("cancelled mid-evaluation: Eval took %v", elapsed)
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

func TestEvalInvalidResults(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package p

s := "allow"

n := 1

obj := {"allow": "yes"}

list := [true, true]

yes := true

no := false
`})
	invalid := Decision{Reasons: []string{ReasonInvalid}}
	tests := []struct {
		query string
		want  Decision
	}{
		{"data.p.undefined_rule", invalid},
		{"data.no_such_package.decision", invalid},
		{"data.p.s", invalid},
		{"data.p.n", invalid},
		{"data.p.obj", invalid},
		{"data.p.list", invalid},
		{"data.p", invalid}, // the whole package: an object with unknown keys
		{"data.p.yes", Decision{Allow: true}},
		{"data.p.no", Decision{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			e := newEngine(t, Config{Paths: []string{dir}, Query: tt.query})
			got, err := e.Eval(context.Background(), botInput().Value())
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Eval\n got %#v\nwant %#v", got, tt.want)
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

func TestEvalConcurrent(t *testing.T) {
	// A generous timeout: this test is about the decisions, and 50
	// goroutines under -race on a small machine can starve one evaluation
	// past the 100ms default (which then, correctly, fails closed).
	e := newEngine(t, Config{Paths: []string{handoffDir}, Query: handoffQuery, Timeout: 30 * time.Second})
	inputs := []*Input{botInput()}
	for _, mod := range []func(*Input){
		func(in *Input) { in.Credential.Username = "agent7" },
		func(in *Input) { in.Credential.Tenant = "Cust1" },
		func(in *Input) { in.SessionID = 1 },
		func(in *Input) { in.Tenant = "Cust12345"; in.Credential.Username = "cust12345-bot" },
	} {
		in := botInput()
		mod(in)
		inputs = append(inputs, in)
	}
	want := make([]Decision, len(inputs))
	for i, in := range inputs {
		d, err := e.Eval(context.Background(), in.Value())
		if err != nil {
			t.Fatal(err)
		}
		want[i] = d
	}

	const goroutines, rounds = 50, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				i := (g + r) % len(inputs)
				d, err := e.Eval(context.Background(), inputs[i].Value())
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, input %d: %v", g, i, err)
					continue
				}
				if !reflect.DeepEqual(d, want[i]) {
					errs <- fmt.Errorf("goroutine %d, input %d: got %#v, want %#v", g, i, d, want[i])
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 10 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Errorf("%d of %d concurrent evaluations differed", n, goroutines*rounds)
	}
}

func BenchmarkEvalHandoff(b *testing.B) {
	// A generous timeout, so that a descheduled iteration on a busy
	// machine does not end the benchmark; the policy itself takes
	// microseconds.
	e := newEngine(b, Config{Paths: []string{handoffDir}, Query: handoffQuery, Timeout: 30 * time.Second})
	input := botInput().Value()
	ctx := context.Background()
	d, err := e.Eval(ctx, input)
	if err != nil || !d.Allow {
		b.Fatalf("Eval = %+v, %v; want an allow", d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Eval(ctx, input); err != nil {
			b.Fatal(err)
		}
	}
}
