package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/cli"
)

const (
	auditGolden     = "testdata/audit/chain.jsonl"
	auditGoldenHMAC = "testdata/audit/chain-hmac.jsonl"
	auditGoldenKey  = "testdata/audit/chain-hmac.key"
)

// auditRotatedLog writes 30 records through a FileSink that rotates every
// few records and returns the live file's path.
func auditRotatedLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := audit.OpenFileSink(audit.FileSinkConfig{Path: path, MaxSize: 4 << 10, Fsync: audit.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		r := &audit.Record{
			Timestamp: time.Date(2026, 11, 25, 10, 0, i, 0, time.UTC), EventID: audit.NewEventID(), RequestID: fmt.Sprint("req-", i),
			Action: "chat_session.reset", Allowed: true, Outcome: audit.OutcomeSuccess, Method: "POST", Status: 200,
			Path: "/api/v1/ChatSession/427/Reset", Route: "rest", SessionID: 427,
			Decision: &audit.Decision{Allow: true, Reasons: []string{"listed_bot"}},
		}
		if err := s.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestAuditVerifyCommand verifies intact and broken chains: plain and keyed,
// edited, rotated, partial, and cut short of a known head.
func TestAuditVerifyCommand(t *testing.T) {
	edited := cmdWriteFile(t, "edited.jsonl", strings.Replace(cmdReadFile(t, auditGolden), `"id":"req-000003"`, `"id":"req-999999"`, 1))
	rotated := auditRotatedLog(t)
	siblings, err := audit.RotatedFiles(rotated)
	if err != nil || len(siblings) < 2 {
		t.Fatalf("rotated files %v (%v)", siblings, err)
	}

	runVerifyCases(t, []verifyCase{
		{
			name: "good chain",
			args: []string{auditGolden},
			want: `^OK: 5 records in 1 files, chain intact \(last seq 5, hash 1b5f481f5e4e4f2a24c72c08b7230f9a79faa72ffd662a8ae06d1935964e3bea\)\n$`,
		},
		{
			name: "keyed chain with its key",
			args: []string{"--key-file", auditGoldenKey, auditGoldenHMAC},
			want: `^OK: 5 records in 1 files, chain intact \(last seq 5, hash [0-9a-f]{64}\)\n$`,
		},
		{
			name: "keyed chain without its key",
			args: []string{auditGoldenHMAC},
			code: cli.ExitVerdict,
			want: `^FAIL: edited at ` + regexp.QuoteMeta(auditGoldenHMAC) + `:1 \(seq 1\): the hash does not recompute`,
		},
		{
			name: "edited line",
			args: []string{edited},
			code: cli.ExitVerdict,
			want: `^FAIL: edited at ` + regexp.QuoteMeta(edited) + `:3 \(seq 3\): the hash does not recompute.*\n$`,
		},
		{
			name: "live file with its rotated files",
			args: []string{rotated},
			want: fmt.Sprintf(`^OK: 30 records in %d files, chain intact \(last seq 30, hash [0-9a-f]{64}\)\n$`, len(siblings)+1),
		},
		{
			name: "rotated files named too",
			args: []string{siblings[0], rotated},
			want: fmt.Sprintf(`^OK: 30 records in %d files, `, len(siblings)+1),
		},
		{
			name: "live file alone",
			args: []string{"--with-rotated=false", rotated},
			code: cli.ExitVerdict,
			want: `^FAIL: deleted at ` + regexp.QuoteMeta(rotated) + `:1 \(seq \d+\): the chain starts at seq \d+: records seq 1\.\.\d+ are missing`,
		},
		{
			name: "live file alone, partial",
			args: []string{"--with-rotated=false", "--partial", rotated},
			want: `^OK: \d+ records in 1 files, chain intact \(last seq 30, `,
		},
		{
			name: "head beyond the end",
			args: []string{"--head", "7", auditGolden},
			code: cli.ExitVerdict,
			want: `^FAIL: deleted at ` + regexp.QuoteMeta(auditGolden) + `:6 \(seq 6\): the chain ends at seq 5 but is known to have reached seq 7`,
		},
		{
			name: "head with its hash",
			args: []string{"--head", "5:1b5f481f5e4e4f2a24c72c08b7230f9a79faa72ffd662a8ae06d1935964e3bea", auditGolden},
			want: `^OK: 5 records`,
		},
	})
}

// TestAuditVerifyErrors: what keeps the chain from being checked is an
// error (exit 1), never a verdict.
func TestAuditVerifyErrors(t *testing.T) {
	emptyKey := cmdWriteFile(t, "empty.key", "\n")
	missing := filepath.Join(t.TempDir(), "missing.log")

	runVerifyCases(t, []verifyCase{
		{
			name:    "missing file",
			args:    []string{missing},
			code:    cli.ExitError,
			wantErr: "no such file",
		},
		{
			name:    "missing key file",
			args:    []string{"--key-file", missing, auditGolden},
			code:    cli.ExitError,
			wantErr: "reading the chain key",
		},
		{
			name:    "empty key file",
			args:    []string{"--key-file", emptyKey, auditGolden},
			code:    cli.ExitError,
			wantErr: "is empty",
		},
		{
			name:    "bad head",
			args:    []string{"--head", "x", auditGolden},
			code:    cli.ExitError,
			wantErr: "--head",
		},
		{
			name:    "no files",
			args:    nil,
			code:    cli.ExitError,
			wantErr: "requires at least 1 arg",
		},
	})
}

// verifyCase is one `audit verify` run and what it must give.
type verifyCase struct {
	name string
	args []string
	code int
	// want is a regular expression the whole stdout must match.
	want    string
	wantErr string
}

// runVerifyCases runs each case through the registered command: the exit
// status the process would get, then stdout.
func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCommand(t, append([]string{"audit", "verify"}, tt.args...)...)
			switch tt.code {
			case cli.ExitOK:
				if err != nil {
					t.Fatalf("error %v; stdout:\n%s", err, stdout.String())
				}
			case cli.ExitVerdict:
				if err == nil || err.Error() != "exiting with status 2" {
					t.Fatalf("error %v, want exit status 2; stdout:\n%s", err, stdout.String())
				}
				if stderr.Len() != 0 {
					t.Errorf("stderr on a verdict: %s", stderr.String())
				}
			case cli.ExitError:
				if err == nil || strings.Contains(err.Error(), "status 2") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q (exit 1); stdout:\n%s", err, tt.wantErr, stdout.String())
				}
			}
			if tt.want != "" && !regexp.MustCompile(tt.want).MatchString(stdout.String()) {
				t.Errorf("stdout %q does not match %s", stdout.String(), tt.want)
			}
		})
	}
}

// TestRunAuditVerifyCodes checks the exit codes the process gets.
func TestRunAuditVerifyCodes(t *testing.T) {
	edited := cmdWriteFile(t, "edited.jsonl", strings.Replace(cmdReadFile(t, auditGolden), `"status_code":200`, `"status_code":201`, 1))
	for _, tt := range []struct {
		files []string
		code  int
	}{
		{[]string{auditGolden}, cli.ExitOK},
		{[]string{edited}, cli.ExitVerdict},
		{[]string{filepath.Join(t.TempDir(), "missing.log")}, cli.ExitError},
		{[]string{t.TempDir()}, cli.ExitError},
	} {
		var out bytes.Buffer
		code, err := cli.RunAuditVerify(cli.VerifyOptions{Files: tt.files, WithRotated: true}, &out)
		if code != tt.code || (code == cli.ExitError) != (err != nil) {
			t.Errorf("%v: code %d, error %v; want code %d\n%s", tt.files, code, err, tt.code, out.String())
		}
	}
	if _, err := os.Stat(auditGolden); err != nil {
		t.Fatal(err)
	}
}
