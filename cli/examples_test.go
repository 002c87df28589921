package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/resetguard/caddy-resetguard/cli"
)

// examplesDir holds the example policies, one directory each.
const examplesDir = "testdata/policies"

// stockOPATest runs the Rego tests of paths as the stock `opa test` does
// (cmd/test.go of the OPA version in go.mod, without flags): OPA's test
// loader, OPA's default compiler (no strict built-in errors, every
// built-in allowed), OPA's runner and pretty reporter. It returns each
// test's outcome by full name and the report.
func stockOPATest(t *testing.T, paths ...string) (map[string]string, string) {
	t.Helper()
	ctx := context.Background()
	modules, store, err := tester.LoadWithParserOptions(paths, nil, ast.ParserOptions{RegoVersion: ast.DefaultRegoVersion, ProcessAnnotation: true})
	if err != nil {
		t.Fatalf("opa test %v: loading: %v", paths, err)
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Abort(ctx, txn)
	compiler := ast.NewCompiler().
		WithPathConflictsCheck(storage.NonEmpty(ctx, store, txn)).
		WithEnablePrintStatements(true).
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithUseTypeCheckAnnotations(true)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		CapturePrintOutput(true).
		StackTraces(true).
		SetModules(modules).
		SetTimeout(30*time.Second).
		RunTests(ctx, txn)
	if err != nil {
		t.Fatalf("opa test %v: compiling: %v", paths, err)
	}
	outcomes := map[string]string{}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
		outcomes[r.Package+"."+r.Name] = outcome(r)
	}
	report := make(chan *tester.Result, len(results))
	for _, r := range results {
		report <- r
	}
	close(report)
	var out bytes.Buffer
	if err := (tester.PrettyReporter{Output: &out}).Report(report); err != nil {
		t.Fatal(err)
	}
	return outcomes, out.String()
}

func outcome(r *tester.Result) string {
	switch {
	case r.Skip:
		return "skip"
	case r.Error != nil:
		return "error"
	case r.Fail:
		return "fail"
	}
	return "pass"
}

// ourTest runs `policy test --format json` on paths and returns each
// test's outcome by full name.
func ourTest(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	var stdout bytes.Buffer
	code, err := cli.RunPolicyTest(context.Background(), cli.TestOptions{Paths: paths, Format: "json", FailOnEmpty: true}, &stdout)
	if err != nil {
		t.Fatalf("policy test %v: exit code %d: %v", paths, code, err)
	}
	got := cmdResults(t, stdout.Bytes())
	if want := cli.ExitOK; code != want {
		t.Errorf("policy test %v: exit code %d, want %d; results %v", paths, code, want, got)
	}
	return got
}

// TestExamplesPassOursAndStockOPA runs both commands on the example
// policies: `policy test testdata/policies` and the stock `opa test
// testdata/policies` (OPA's tester as opa test runs it), over the parent
// folder and over each example's own. Every test passes in all of them,
// the same tests: each example's data is at the same data path whichever
// folder is loaded, and nothing under the folder is a broken fixture.
func TestExamplesPassOursAndStockOPA(t *testing.T) {
	ours := ourTest(t, examplesDir)
	stock, report := stockOPATest(t, examplesDir)
	if len(ours) == 0 {
		t.Fatal("no tests ran")
	}
	if !maps.Equal(ours, stock) {
		t.Errorf("policy test and opa test disagree:\n ours  %v\n stock %v", ours, stock)
	}
	for name, o := range stock {
		if o != "pass" {
			t.Errorf("opa test %s: %s: %s", examplesDir, name, o)
		}
	}
	// The stock report's last line, as `opa test` prints it.
	if lines := strings.Split(strings.TrimSpace(report), "\n"); lines[len(lines)-1] != fmt.Sprintf("PASS: %d/%d", len(stock), len(stock)) {
		t.Errorf("opa test %s reports:\n%s", examplesDir, report)
	}
	t.Logf("%s: %d tests pass with policy test and with stock opa test", examplesDir, len(stock))

	// Each example alone: the same tests pass, so its data resolves the
	// same loaded from its own folder as from the parent.
	entries, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	perFolder := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(examplesDir, e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			ours := ourTest(t, dir)
			stock, _ := stockOPATest(t, dir)
			if !maps.Equal(ours, stock) {
				t.Errorf("policy test and opa test disagree on %s:\n ours  %v\n stock %v", dir, ours, stock)
			}
			maps.Copy(perFolder, stock)
		})
	}
	if !maps.Equal(perFolder, stock) {
		t.Errorf("folder by folder %d tests, the parent folder %d: %v", len(perFolder), len(stock), symmetricDiff(perFolder, stock))
	}
}

// TestExamplesDataLayout: no example carries a data file that the loader
// would place by its directory (data.json or data.yaml land one level
// deeper when the parent folder is loaded); its data are Rego modules,
// placed by their package.
func TestExamplesDataLayout(t *testing.T) {
	err := filepath.WalkDir(examplesDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".json", ".yaml", ".yml":
			t.Errorf("%s: a data document under %s lands at a path that depends on the folder loaded; write it as a Rego module", path, examplesDir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestExamplesEvalFromParent: `policy eval` of each example's decision
// query decides the same loading the parent folder as loading the
// example's own.
func TestExamplesEvalFromParent(t *testing.T) {
	input := cmdReadFile(t, cmdBotInput)
	for _, name := range []string{"handoff", "bots_only", "own_sessions", "session_state", "tenant_isolation", "business_hours"} {
		t.Run(name, func(t *testing.T) {
			query := "data.resetguard.examples." + name + ".decision"
			if name == "handoff" {
				query = cmdHandoffQ
			}
			decide := func(dir string) map[string]any {
				var stdout, stderr bytes.Buffer
				code, err := cli.RunPolicyEval(context.Background(), cli.EvalOptions{Data: []string{dir}, Query: query, Input: "-", Repeat: 1, Timeout: 5 * time.Second},
					strings.NewReader(input), &stdout, &stderr)
				if code != cli.ExitOK || err != nil {
					t.Fatalf("policy eval -d %s %s: exit code %d, %v", dir, query, code, err)
				}
				var rep map[string]any
				if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
					t.Fatal(err)
				}
				return rep["decision"].(map[string]any)
			}
			own, parent := decide(filepath.Join(examplesDir, name)), decide(examplesDir)
			if !jsonEqual(own, parent) {
				t.Errorf("own folder %v, parent folder %v", own, parent)
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func symmetricDiff(a, b map[string]string) []string {
	var d []string
	for k := range a {
		if _, ok := b[k]; !ok {
			d = append(d, "+"+k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "-"+k)
		}
	}
	slices.Sort(d)
	return d
}
