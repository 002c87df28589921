package refusal

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// reasonWords returns the value of every string constant in reasons.go
// whose name does not start with Message: the published reason words.
func reasonWords(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	words := map[string]string{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || strings.HasPrefix(name.Name, "Message") {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				words[name.Name] = v
			}
		}
	}
	return words
}

// TestReasonsArePublished holds the contract: every reason a refusal can
// carry is documented for clients and SIEM pipelines (README or
// docs/audit.md), and no two constants share a word.
func TestReasonsArePublished(t *testing.T) {
	words := reasonWords(t)
	if len(words) < 40 {
		t.Fatalf("found %d reason constants in reasons.go; the parser missed some", len(words))
	}
	var docs strings.Builder
	for _, p := range []string{"../../README.md", "../../docs/audit.md"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs.Write(b)
	}
	seen := map[string]string{}
	for name, w := range words {
		if other, dup := seen[w]; dup {
			t.Errorf("%s and %s are both %q", name, other, w)
		}
		seen[w] = name
		if !strings.Contains(docs.String(), "`"+w+"`") {
			t.Errorf("reason %s (%q) is not documented in README.md or docs/audit.md", name, w)
		}
	}
}

func TestRefusal(t *testing.T) {
	cause := os.ErrDeadlineExceeded
	tests := []struct {
		name       string
		ref        *Refusal
		wantStatus int
		wantReason string
		wantError  string
		wantHeader string
	}{
		{"new", New(400, BadSessionID, "bad id"), 400, "bad_session_id", "reset_guard: bad_session_id: bad id", ""},
		{"wrapped", New(503, PolicyError, "no decision").Wrap(cause), 503, "policy_error",
			"reset_guard: policy_error: no decision: " + cause.Error(), ""},
		{"unauthenticated", Unauthenticated(MissingCredentials, false), 401, "missing_credentials",
			"reset_guard: missing_credentials: " + MessageUnauthenticated, ""},
		{"policy reasons", &Refusal{Status: 403, Reasons: []string{"a", "b"}}, 403, "a,b", "reset_guard: a,b", ""},
		{"header", New(405, MethodNotAllowed, "POST only").WithHeader("Allow", "POST"), 405, "method_not_allowed",
			"reset_guard: method_not_allowed: POST only", "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ref.Status != tc.wantStatus || tc.ref.Reason() != tc.wantReason || tc.ref.Error() != tc.wantError {
				t.Errorf("got %d %q %q, want %d %q %q", tc.ref.Status, tc.ref.Reason(), tc.ref.Error(), tc.wantStatus, tc.wantReason, tc.wantError)
			}
			if got := tc.ref.Header.Get("Allow"); got != tc.wantHeader {
				t.Errorf("Allow header %q, want %q", got, tc.wantHeader)
			}
			wrapped := error(tc.ref)
			if got, ok := As(wrapped); !ok || got != tc.ref {
				t.Errorf("As did not find the refusal")
			}
			if !tc.ref.Has(tc.ref.Reasons[0]) || tc.ref.Has("no_such_reason") {
				t.Errorf("Has is wrong for %v", tc.ref.Reasons)
			}
		})
	}
	if r, _ := As(New(503, PolicyError, "x").Wrap(cause)); r.Unwrap() != cause {
		t.Error("Unwrap lost the cause")
	}
}
