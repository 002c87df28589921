package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/audit"
)

// walRequest is an allowed reset's record, the i-th of a run.
func walRequest(i int) *audit.Record {
	return &audit.Record{
		Timestamp: time.Date(2026, 11, 25, 10, 0, i, 0, time.UTC), EventID: audit.NewEventID(), RequestID: fmt.Sprint("req-", i),
		Action: "chat_session.reset", Allowed: true, Outcome: audit.OutcomeSuccess, Method: "POST", Status: 200,
		Path: "/api/v1/ChatSession/427/Reset", Route: "rest", SessionID: 427, CredScheme: "basic",
		Fingerprint: "0123456789abcdef0123456789abcdef", PrincipalSource: "none",
		Decision: &audit.Decision{Allow: true, Reasons: []string{"listed_bot"}, Query: "data.q", Revision: "sha256:0011"},
		Upstream: &audit.Upstream{Status: 200},
	}
}

// walLog writes script's records through a FileSink: "I" the intent of
// the next request, "O" the outcome of the last intent, "T" a torn line
// left by a crash and a restart over it.
func walLog(t *testing.T, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	open := func() *audit.FileSink {
		s, err := audit.OpenFileSink(audit.FileSinkConfig{Path: path, Fsync: audit.FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	var last *audit.Record
	for i, step := range script {
		var r *audit.Record
		switch step {
		case 'I':
			last = audit.NewIntent(walRequest(i))
			r = last
		case 'O':
			r = walRequest(i)
			r.Kind, r.IntentSeq = audit.KindOutcome, last.Chain.Seq
		case 'T':
			s.Close()
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(`{"@timestamp":"2026-11-25T10:`)
			f.Close()
			s = open()
			continue
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

// TestAuditVerifyWriteAhead: open intents are a warning, repairs a note;
// both leave the exit code 0.
func TestAuditVerifyWriteAhead(t *testing.T) {
	many := ""
	for range 23 {
		many += "I"
	}
	runVerifyCases(t, []verifyCase{
		{
			name: "every intent closed",
			args: []string{walLog(t, "IOIO")},
			want: `^OK: 4 records in 1 files, chain intact \(last seq 4, hash [0-9a-f]{64}\)\n$`,
		},
		{
			name: "intents in flight",
			args: []string{walLog(t, "IOIIO")},
			want: `^OK: 5 records .*\nWARNING: 1 intent\(s\) without an outcome: seq 3 \(requests in flight, or the gateway stopped .* gateway_restarted\)\n$`,
		},
		{
			name: "a restart over a torn line closed the open intent",
			args: []string{walLog(t, "IOITI")},
			// 1-3, the retired 4, the repair 5, gateway_restarted 6, intent 7.
			want: `^OK: 6 records in 1 files, chain intact \(last seq 7, .*\nWARNING: 1 intent\(s\) without an outcome: seq 7 .*\nNOTE: 1 repair record\(s\): a torn last line cut .*\n$`,
		},
		{
			name: "many open intents listed up to a bound",
			args: []string{walLog(t, many)},
			want: `\nWARNING: 23 intent\(s\) without an outcome: seq 1, 2, 3, .*, 19, 20, … \(3 more\) \(`,
		},
	})
}
