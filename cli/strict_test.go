package cli_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/cli"
)

// Issue 16 in the commands: `policy eval` and `policy test` compile and
// evaluate a policy as the handler does (strict built-in errors, refused
// built-ins, no bundle among the files), so that what they say is what
// the gateway does. The policies are in testdata/strict.

// strictConfig writes a JSON config whose one reset_guard handler has the
// given policy object, and returns its path.
func strictConfig(t *testing.T, policyJSON string) string {
	t.Helper()
	return cmdWriteFile(t, "caddy.json", `{"apps": {"http": {"servers": {"s": {"listen": [":0"],
		"routes": [{"handle": [{"handler": "reset_guard", "policy": `+policyJSON+`}]}]}}}}}`)
}

// networkData writes data pointing testdata/strict/network at a service
// that answers 200, and returns its directory.
func networkData(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	return filepath.Dir(cmdWriteFile(t, "data.json", `{"strict_network": {"url": "`+srv.URL+`"}}`))
}

// strayBundleDir is a policy directory holding a gzipped tarball.
func strayBundleDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(cmdWriteFile(t, "policy.rego", cmdReadFile(t, "testdata/strict/guarded/policy.rego")))
	if err := os.WriteFile(filepath.Join(dir, "old.tar.gz"), []byte("not even a tarball"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPolicyEvalStrict(t *testing.T) {
	failopen := []string{"testdata/strict/failopen"}
	runEvalCases(t, []evalCase{
		{
			name:     "issue 16's fail-open policy: an evaluation error, answered 503 policy_error",
			opts:     cli.EvalOptions{Data: failopen, Query: "data.strict.failopen.decision", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"failopen/policy.rego:11", "eval_builtin_error", "to_number", "503 (policy_error)"},
		},
		{
			name: "the config's error_status is the answer named",
			opts: cli.EvalOptions{Config: strictConfig(t, `{"paths": ["testdata/strict/failopen"],
				"query": "data.strict.failopen.decision", "error_status": 504}`), Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"eval_builtin_error", "504 (policy_error)"},
		},
		{
			name:     "guarded policy allows",
			opts:     cli.EvalOptions{Data: []string{"testdata/strict/guarded"}, Query: "data.strict.guarded.decision", Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "not_blocked")},
		},
		{
			name:     "http.send refused at load",
			opts:     cli.EvalOptions{Data: []string{"testdata/strict/network"}, Query: "data.strict.network.decision", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"network/policy.rego:6", "http.send", "policy.allow_network_builtins"},
		},
		{
			// A config for its timeout: 100ms is short for a loaded machine.
			name: "http.send with --allow-network-builtins",
			opts: cli.EvalOptions{Config: strictConfig(t, `{"paths": ["testdata/strict/network", "`+networkData(t)+`"],
				"query": "data.strict.network.decision", "timeout": "5s"}`), Input: cmdBotInput, AllowNetworkBuiltins: true},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "service_says_yes")},
		},
		{
			name: "http.send with the config's allow_network_builtins",
			opts: cli.EvalOptions{Config: strictConfig(t, `{"paths": ["testdata/strict/network", "`+networkData(t)+`"],
				"query": "data.strict.network.decision", "timeout": "5s", "allow_network_builtins": true}`), Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "service_says_yes")},
		},
		{
			name:     "rand.intn refused even with network built-ins",
			opts:     cli.EvalOptions{Data: []string{"testdata/strict/refused/rand.rego"}, Query: "data.strict.refused.decision", Input: cmdBotInput, AllowNetworkBuiltins: true},
			wantCode: 2,
			wantErr:  []string{"rand.intn", "never allowed"},
		},
		{
			name:     "print goes to stderr",
			opts:     cli.EvalOptions{Data: []string{"testdata/strict/print"}, Query: "data.strict.print.decision", Input: cmdBotInput},
			wantCode: 0,
			checks:   []evalCheck{wantDecision(true, "printed")},
			// The file is named as the loader names it.
			wantStderr: "print: testdata/strict/print/policy.rego:7: deciding for session 427 as chatbot\n",
		},
		{
			name:     "a bundle tarball among the policy files",
			opts:     cli.EvalOptions{Data: []string{strayBundleDir(t)}, Query: "data.strict.guarded.decision", Input: cmdBotInput},
			wantCode: 2,
			wantErr:  []string{"old.tar.gz", "policy.bundles"},
		},
	})
}

// mockedNetwork is testdata/strict/network with a Rego test mocking
// http.send: it compiles only where the handler would load the policy,
// with network built-ins allowed.
func mockedNetwork(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(cmdWriteFile(t, "network_test.rego", `package strict.network_test

import data.strict.network

ok(_) := {"status_code": 200}

test_service_says_yes if {
	network.decision.allow with http.send as ok with data.strict_network.url as "http://service.invalid/"
}
`))
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(cmdReadFile(t, "testdata/strict/network/policy.rego")), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPolicyTestStrict(t *testing.T) {
	mocked := mockedNetwork(t)
	runTestCases(t, []testCase{
		{
			name:     "issue 16's fail-open policy: its test errors with the built-in error",
			opts:     cli.TestOptions{Paths: []string{"testdata/strict/failopen"}},
			wantCode: 2, summary: map[string]string{"ERROR": "1/1"},
			want: []string{"data.strict.failopen_test.test_post_is_not_blocked: ", "eval_builtin_error: to_number"},
		},
		{
			name:     "the guarded policy passes",
			opts:     cli.TestOptions{Paths: []string{"testdata/strict/guarded"}},
			wantCode: 0, summary: map[string]string{"PASS": "2/2"},
		},
		{
			name:     "http.send mocked with network built-ins allowed",
			opts:     cli.TestOptions{Paths: []string{mocked}, AllowNetworkBuiltins: true},
			wantCode: 0, summary: map[string]string{"PASS": "1/1"},
		},
		{
			name:     "http.send refused at load",
			opts:     cli.TestOptions{Paths: []string{mocked}},
			wantCode: 1, wantErr: []string{"http.send", "policy.allow_network_builtins"},
		},
		{
			name:     "uuid.rfc4122 refused",
			opts:     cli.TestOptions{Paths: []string{"testdata/strict/refused/uuid.rego", "testdata/strict/guarded"}},
			wantCode: 1, wantErr: []string{"uuid.rego:3", "uuid.rfc4122", "never allowed"},
		},
		{
			name:     "a bundle tarball in the directory",
			opts:     cli.TestOptions{Paths: []string{strayBundleDir(t)}},
			wantCode: 1, wantErr: []string{"old.tar.gz"},
		},
	})
}

// TestStrictFlagsCobra: --allow-network-builtins reaches both commands
// through their cobra wiring.
func TestStrictFlagsCobra(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for exit status 0
		want    string // in stdout
	}{
		{"eval", []string{"eval", "-c", strictConfig(t, `{"paths": ["testdata/strict/network", "`+networkData(t)+`"],
			"query": "data.strict.network.decision", "timeout": "5s"}`), "-i", cmdBotInput, "--allow-network-builtins"}, "", `"allow": true`},
		{"eval without the flag", []string{"eval", "-d", "testdata/strict/network", "data.strict.network.decision",
			"-i", cmdBotInput}, "policy.allow_network_builtins", ""},
		{"test", []string{"test", "--allow-network-builtins", mockedNetwork(t)}, "", "PASS: 1/1"},
		{"test without the flag", []string{"test", mockedNetwork(t)}, "policy.allow_network_builtins", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runCommand(t, append([]string{"policy"}, tt.args...)...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v; stdout:\n%s", err, stdout.String())
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(stdout.String(), tt.want) {
				t.Errorf("stdout does not contain %q:\n%s", tt.want, stdout.String())
			}
		})
	}
}
