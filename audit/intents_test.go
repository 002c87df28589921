package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// walRequest is fsRecord(cs, i) as the handler fills it for an allowed
// reset that succeeded: valid against the schema.
func walRequest(cs *ChatSession, i int) *Record {
	r := fsRecord(cs, i)
	r.Allowed, r.Reason = true, ""
	return r
}

// walScript writes a request's records by a script of steps, as the
// handler would: "I3" the intent of request 3 (remembering its seq), "D3"
// the same under dry run, "O3" its outcome, "R3" a refusal, "|" makes the
// next write rotate the file.
type walScript struct {
	t      *testing.T
	s      *FileSink
	cs     *ChatSession
	intent map[int]*Record // request -> its intent, as written
}

func (w *walScript) run(script string) {
	w.t.Helper()
	for _, step := range strings.Fields(script) {
		if step == "|" {
			w.s.cfg.MaxSize = 1 // a record never fits: the next write rotates
			continue
		}
		i, err := strconv.Atoi(step[1:])
		if err != nil {
			w.t.Fatalf("step %q", step)
		}
		var r *Record
		switch step[0] {
		case 'I', 'D':
			req := walRequest(w.cs, i)
			if step[0] == 'D' {
				req.Decision = &Decision{Allow: false, DryRun: true, Reasons: []string{"not_a_bot"}, Query: "data.q", Revision: "sha256:0011"}
			}
			r = NewIntent(req)
			w.intent[i] = r
		case 'O':
			r = walRequest(w.cs, i)
			r.Kind, r.IntentSeq = KindOutcome, w.intent[i].Chain.Seq
		case 'R':
			r = walRequest(w.cs, i)
			r.Kind, r.Allowed, r.Outcome, r.Reason, r.Status = KindRefusal, false, OutcomeFailure, refusal.PolicyDenied, 403
			r.Upstream, r.ChatSession, r.Decision = nil, nil, &Decision{Reasons: []string{}, Query: "data.q", Revision: "sha256:0011"}
		default:
			w.t.Fatalf("step %q", step)
		}
		if err := w.s.Write(r); err != nil {
			w.t.Fatalf("step %s: %v", step, err)
		}
		w.s.cfg.MaxSize = 0
	}
}

// TestOpenClosesOpenIntents: at open, every intent no outcome names (in
// the live file or the newest rotated file) gets exactly one outcome
// unknown/gateway_restarted, in seq order; a second open appends none.
func TestOpenClosesOpenIntents(t *testing.T) {
	cs := fixtureEntity(t)
	tests := []struct {
		name    string
		script  string
		closed  []int // the requests whose intents the open closes
		rotated bool
	}{
		{"every intent has its outcome", "I1 O1 R2 I3 O3", nil, false},
		{"the last intent in flight", "I1 O1 I2", []int{2}, false},
		{"several in flight, interleaved", "I1 I2 O2 D3 R4", []int{1, 3}, false},
		{"refusals only", "R1 R2", nil, false},
		{"intent in the rotated file, no outcome", "I1 | R2", []int{1}, true},
		{"intent in the rotated file, outcome in the live file", "I1 I2 | O1 O2", nil, true},
		{"in flight on both sides of a rotation", "I1 I2 O1 | I3 R4", []int{2, 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w := &walScript{t: t, s: fsOpen(t, FileSinkConfig{Path: path}), cs: cs, intent: map[int]*Record{}}
			w.run(tt.script)
			if err := w.s.Close(); err != nil { // as good as a crash for the file
				t.Fatal(err)
			}
			files := fsFiles(t, path)
			if (len(files) > 1) != tt.rotated {
				t.Fatalf("files %v", files)
			}
			var wantSeqs []int64
			for _, i := range tt.closed {
				wantSeqs = append(wantSeqs, w.intent[i].Chain.Seq)
			}
			rep := fsVerify(t, VerifyOptions{}, files...)
			if rep.FirstProblem != nil || rep.OpenIntents != len(wantSeqs) || !reflect.DeepEqual(rep.OpenIntentSeqs, wantSeqs) {
				t.Fatalf("verify before the open: %+v, want open intents %v", rep, wantSeqs)
			}

			s := fsOpen(t, FileSinkConfig{Path: path})
			recs := s.OpenRecords()
			if len(recs) != len(tt.closed) {
				t.Fatalf("open appended %d records, want %d", len(recs), len(tt.closed))
			}
			for k, i := range tt.closed {
				checkGatewayRestarted(t, recs[k], w.intent[i])
			}
			if st := s.Stats(); st.RecoveredIntents != int64(len(tt.closed)) {
				t.Errorf("stats %+v, want %d recovered intents", st, len(tt.closed))
			}
			if len(tt.closed) > 0 && !strings.Contains(strings.Join(s.Warnings(), "\n"), "gateway_restarted") {
				t.Errorf("warnings %q do not tell of the closed intents", s.Warnings())
			}
			s.Close()
			files = fsFiles(t, path)
			rep = fsVerify(t, VerifyOptions{}, files...)
			if rep.FirstProblem != nil || rep.OpenIntents != 0 {
				t.Fatalf("verify after the open: %+v, want intact with no open intents", rep)
			}
			for _, f := range files {
				validateFileLines(t, f)
			}

			size := fsSize(t, path)
			s = fsOpen(t, FileSinkConfig{Path: path})
			if n := len(s.OpenRecords()); n != 0 || fsSize(t, path) != size {
				t.Errorf("second open appended %d records (%d -> %d bytes), want none", n, size, fsSize(t, path))
			}
		})
	}
}

// checkGatewayRestarted checks the outcome open wrote for intent.
func checkGatewayRestarted(t *testing.T, out, intent *Record) {
	t.Helper()
	if out.Kind != KindOutcome || out.IntentSeq != intent.Chain.Seq || out.Outcome != OutcomeUnknown ||
		out.Reason != refusal.GatewayRestarted || out.Status != 0 || !out.Allowed || out.Upstream != nil || out.Chain == nil {
		t.Errorf("outcome %+v for the intent at seq %d", out, intent.Chain.Seq)
	}
	// The intent's facts, copied; the request id too, but not the
	// event.id: the outcome is a record of its own.
	same := func(r *Record) []any {
		return []any{r.Timestamp.UTC(), r.RequestID, r.Action, r.Method, r.Path, r.SourceIP, r.UserID, r.UserName,
			r.UserDomain, r.PrincipalSource, r.Route, r.SessionID, r.CredScheme, r.Fingerprint, *r.Decision}
	}
	if got, want := same(out), same(intent); !reflect.DeepEqual(got, want) {
		t.Errorf("outcome facts %v,\nwant the intent's %v", got, want)
	}
	if !isEventID(out.EventID) || out.EventID == intent.EventID {
		t.Errorf("outcome event.id %q, intent's %q: want a fresh id", out.EventID, intent.EventID)
	}
}

// TestIntentOutcomeLink: an intent and its outcome in the file, linked by
// intent_seq, and what each line holds.
func TestIntentOutcomeLink(t *testing.T) {
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	req := walRequest(cs, 1)
	intent := NewIntent(req)
	if err := s.Write(intent); err != nil {
		t.Fatal(err)
	}
	if intent.Chain == nil || intent.Chain.Seq != 1 {
		t.Fatalf("intent chain %+v", intent.Chain)
	}
	if req.Chain != nil || req.Kind != "" {
		t.Error("NewIntent changed the request's record")
	}
	req.Kind, req.IntentSeq = KindOutcome, intent.Chain.Seq
	if err := s.Write(req); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	for _, c := range []struct {
		line      string
		want, not []string
	}{
		{lines[0], []string{`"kind":"intent"`, `"outcome":"unknown"`, `"status_code":0`, `"decision":{`, `"credential":{`, `"session_id":401`},
			[]string{`"intent_seq"`, `"upstream"`, `"chat_session"`, `"reason"`}},
		{lines[1], []string{`"kind":"outcome"`, `"intent_seq":1,`, `"upstream":{`}, nil},
	} {
		for _, w := range c.want {
			if !strings.Contains(c.line, w) {
				t.Errorf("line lacks %s:\n%s", w, c.line)
			}
		}
		for _, n := range c.not {
			if strings.Contains(c.line, n) {
				t.Errorf("line has %s:\n%s", n, c.line)
			}
		}
	}
	validateFileLines(t, path)
	if rep := fsVerify(t, VerifyOptions{}, path); rep.FirstProblem != nil || rep.OpenIntents != 0 || rep.Records != 2 {
		t.Fatalf("verify: %+v", rep)
	}
	// The Caddy logger's copy of the outcome carries the link too.
	if line := caddyLine(t, req); !strings.Contains(line, `"kind":"outcome"`) || !strings.Contains(line, `"intent_seq":1`) {
		t.Errorf("logger copy without the link: %s", line)
	}
}

// TestOpenCannotCloseAForgedIntent: an intent line that matches the scan
// but does not decode as an intent stops the open rather than be guessed
// at.
func TestOpenCannotCloseAForgedIntent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	r := walRequest(fixtureEntity(t), 1)
	r.UserName = "x"
	if err := s.Write(NewIntent(r)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	forged := strings.Replace(string(b), `"@timestamp":"2026`, `"@timestamp":"not a time 2026`, 1)
	if err := os.WriteFile(path, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileSink(FileSinkConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "cannot close the intent at seq 1") {
		t.Fatalf("open: %v, want a refusal naming the intent", err)
	}
}

// TestStatsDoesNotWaitForTheWriter: Stats answers while the writer's lock
// is held (a write stuck in write(2) or fsync).
func TestStatsDoesNotWaitForTheWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	fsWrite(t, s, fixtureEntity(t), 1, 3)
	s.mu.Lock()
	got := make(chan SinkStats, 1)
	go func() { got <- s.Stats() }()
	select {
	case st := <-got:
		if st.Seq != 3 || !st.Healthy || st.LastError != "" {
			t.Errorf("stats %+v, want seq 3, healthy", st)
		}
	case <-time.After(time.Second):
		t.Error("Stats waited for the writer's lock")
	}
	s.mu.Unlock()
	s.Close()
	if st := s.Stats(); st.Healthy {
		t.Errorf("stats %+v after Close, want unhealthy", st)
	}
}

// BenchmarkOpenLargeFile measures OpenFileSink on a live file of about
// 100 MiB of allowed resets (an intent and an outcome each, a refusal
// every tenth request), alone and with a rotated file as large: the scan
// for intents without an outcome reads every line. The first open closes
// the one intent left in flight; the timed opens find none.
func BenchmarkOpenLargeFile(b *testing.B) {
	for _, rotated := range []bool{false, true} {
		b.Run(fmt.Sprintf("rotated=%v", rotated), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "audit.log")
			files := 1
			if rotated {
				files = 2
			}
			writeLargeFiles(b, path, files, 100<<20)
			s, err := OpenFileSink(FileSinkConfig{Path: path})
			if err != nil {
				b.Fatal(err)
			}
			if len(s.OpenRecords()) != 1 {
				b.Fatalf("first open closed %d intents, want 1", len(s.OpenRecords()))
			}
			s.Close()
			var total int64
			for _, f := range fsFilesB(b, path) {
				fi, _ := os.Stat(f)
				total += fi.Size()
			}
			b.SetBytes(total)
			b.ResetTimer()
			for b.Loop() {
				s, err := OpenFileSink(FileSinkConfig{Path: path})
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

// writeLargeFiles writes files files of about size bytes each (rotating
// between them) and leaves one intent without an outcome at the end.
func writeLargeFiles(b *testing.B, path string, files int, size int64) {
	cs := fixtureEntity(b)
	s, err := OpenFileSink(FileSinkConfig{Path: path, Fsync: FsyncNever, MaxSize: size})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := 0; ; i++ {
		if rot, _ := RotatedFiles(path); len(rot) == files-1 && s.size > size-8<<10 {
			break
		}
		req := walRequest(cs, i)
		if i%10 == 9 {
			req.Kind, req.Allowed, req.Outcome, req.Reason, req.Status = KindRefusal, false, OutcomeFailure, refusal.PolicyDenied, 403
			req.Upstream, req.ChatSession = nil, nil
			if err := s.Write(req); err != nil {
				b.Fatal(err)
			}
			continue
		}
		in := NewIntent(req)
		if err := s.Write(in); err != nil {
			b.Fatal(err)
		}
		req.Kind, req.IntentSeq = KindOutcome, in.Chain.Seq
		if err := s.Write(req); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Write(NewIntent(walRequest(cs, -1))); err != nil {
		b.Fatal(err)
	}
}

func fsFilesB(b *testing.B, path string) []string {
	rotated, err := RotatedFiles(path)
	if err != nil {
		b.Fatal(err)
	}
	return append(rotated, path)
}

// TestEachLine: lines longer than the read buffer are gathered, lines
// longer than maxLine skipped, a last line without a newline left out,
// and every offset is the line's own.
func TestEachLine(t *testing.T) {
	long := strings.Repeat("x", 300<<10)
	huge := strings.Repeat("y", maxLine+1)
	content := "a\n" + long + "\n" + huge + "\nb\n\ntorn"
	path := filepath.Join(t.TempDir(), "lines")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		line string
		off  int64
	}
	var got []seen
	if err := eachLine(path, func(line []byte, off int64) { got = append(got, seen{string(line), off}) }); err != nil {
		t.Fatal(err)
	}
	bOff := int64(2 + len(long) + 1 + len(huge) + 1)
	want := []seen{{"a", 0}, {long, 2}, {"b", bOff}, {"", bOff + 2}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d lines:", len(got))
		for _, g := range got {
			t.Errorf("  %.10q… (%d bytes) at %d", g.line, len(g.line), g.off)
		}
	}
	for _, w := range want {
		if content[w.off:w.off+int64(len(w.line))] != w.line {
			t.Errorf("offset %d does not hold its line", w.off)
		}
	}
}
