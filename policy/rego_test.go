package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/tester"
)

// policiesDir holds the example policies, each in its own directory with
// its data documents and Rego unit tests.
const policiesDir = "../testdata/policies"

// regoTestDirs lists the directories under root that directly contain a
// *_test.rego file, leaving out any directory named "broken" (deliberately
// invalid fixtures) and everything below it.
func regoTestDirs(t *testing.T, root string) []string {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "broken" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), "_test.rego") {
			seen[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	dirs := make([]string, 0, len(seen))
	for dir := range seen {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	return dirs
}

// skipBroken keeps deliberately invalid fixtures out of a test run, should
// a "broken" directory ever sit below a policy directory.
func skipBroken(_ string, info fs.FileInfo, depth int) bool {
	return info.IsDir() && depth > 0 && info.Name() == "broken"
}

// runRegoDir loads dir (modules, data documents and *_test.rego files,
// recursively) and runs its Rego tests.
func runRegoDir(ctx context.Context, dir string) ([]*tester.Result, error) {
	modules, store, err := tester.Load([]string{dir}, skipBroken)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", dir, err)
	}
	ch, err := tester.NewRunner().
		SetStore(store).
		SetTimeout(30*time.Second).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(true).
		Run(ctx, modules)
	if err != nil {
		return nil, fmt.Errorf("running the Rego tests of %s: %w", dir, err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	return results, nil
}

// TestRegoUnitTests runs the Rego unit tests (test_* rules in *_test.rego)
// of every example policy directory, together with the directory's modules
// and data documents, as `opa test DIR` would.
func TestRegoUnitTests(t *testing.T) {
	dirs := regoTestDirs(t, policiesDir)
	if len(dirs) == 0 {
		t.Fatalf("no *_test.rego files found under %s", policiesDir)
	}
	for _, dir := range dirs {
		rel, _ := filepath.Rel(policiesDir, dir)
		t.Run(filepath.ToSlash(rel), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			results, err := runRegoDir(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			ran := 0
			for _, r := range results {
				name := r.Package + "." + r.Name
				loc := ""
				if r.Location != nil {
					loc = r.Location.String()
				}
				switch {
				case r.Skip:
					t.Logf("%s (%s): skipped", name, loc)
					continue
				case r.Error != nil:
					t.Errorf("%s (%s): ERROR: %v", name, loc, r.Error)
				case r.Fail:
					at := ""
					if r.FailedAt != nil && r.FailedAt.Location != nil {
						at = " at " + r.FailedAt.Location.String() + ": " + r.FailedAt.String()
					}
					t.Errorf("%s (%s): FAIL%s", name, loc, at)
				}
				if len(r.Output) > 0 && !r.Pass() {
					t.Logf("%s output:\n%s", name, r.Output)
				}
				ran++
			}
			if ran == 0 {
				t.Fatalf("%s: no Rego test ran (is every test_ rule named and loaded?)", dir)
			}
			t.Logf("%s: %d Rego tests ran", dir, ran)
		})
	}
}

// TestRegoUnitTestsNotVacuous makes sure the walk above would notice a
// failing Rego test, so that a green TestRegoUnitTests means something.
func TestRegoUnitTestsNotVacuous(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.rego"), "package p\n\nallow := input.x == 1\n")
	writeFile(t, filepath.Join(dir, "p_test.rego"), `package p_test

import data.p

test_passes if p.allow with input as {"x": 1}

test_fails if p.allow with input as {"x": 2}

test_errors if {
	x := 1 / 0
	x > 0
}
`)
	results, err := runRegoDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range results {
		switch {
		case r.Error != nil:
			got[r.Name] = "error"
		case r.Fail:
			got[r.Name] = "fail"
		default:
			got[r.Name] = "pass"
		}
	}
	want := map[string]string{"test_passes": "pass", "test_fails": "fail", "test_errors": "error"}
	for name, outcome := range want {
		if got[name] != outcome {
			t.Errorf("%s: got %q, want %q (all: %v)", name, got[name], outcome, got)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
