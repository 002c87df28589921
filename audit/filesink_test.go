package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fsRecord is a realistic record, the i-th of a run; its reason needs
// escaping (quote, HTML characters, U+2028, non-ASCII).
func fsRecord(cs *ChatSession, i int) *Record {
	id := fmt.Sprintf("req-%06d", i)
	return &Record{
		Timestamp: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		EventID:   NewEventID(), RequestID: id, Action: "chat_session.reset", Allowed: i%3 != 0,
		Outcome: OutcomeSuccess, Reason: "quote \" <b>&amp; \u2028 ü", Duration: time.Duration(1500000 + i),
		Method: "POST", Status: 200, Path: fmt.Sprintf("/api/v1/ChatSession/%d/Reset", 400+i%50),
		SourceIP: "203.0.113.7", UserID: "9", UserName: "chatbot", UserDomain: "Cust12345", PrincipalSource: "jwt",
		Route: "rest", SessionID: int32(400 + i%50), CredScheme: "bearer", Fingerprint: "c6548c08cd277c52ee38b9bc4a544830",
		Decision: &Decision{Allow: true, Reasons: []string{"listed_bot"}, Query: "data.resetguard.handoff.decision",
			Revision: "sha256:512f63cbf2fbafe5", Eval: 702096},
		Upstream:    &Upstream{Status: 200, Duration: 974852, ContentType: "application/json; charset=utf-8", EntityRead: true},
		ChatSession: cs,
	}
}

func fsOpen(t *testing.T, cfg FileSinkConfig) *FileSink {
	t.Helper()
	s, err := OpenFileSink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fsWrite writes records from..to (inclusive) and checks their links.
func fsWrite(t *testing.T, s *FileSink, cs *ChatSession, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		seq, prev := s.Head()
		r := fsRecord(cs, i)
		if err := s.Write(r); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if r.Chain == nil || r.Chain.Seq != seq+1 || r.Chain.Prev != prev || !isHash(r.Chain.Hash) {
			t.Fatalf("write %d: chain %+v after head %d %s", i, r.Chain, seq, prev)
		}
	}
}

// writeConcurrently has writers goroutines write each records apiece
// (writer w's i-th is fsRecord(cs, w*each+i)) and hands every outcome to
// check; a writer stops at the first check that returns false.
func writeConcurrently(s *FileSink, cs *ChatSession, writers, each int, check func(w int, r *Record, err error) bool) {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := fsRecord(cs, w*each+i)
				if !check(w, r, s.Write(r)) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// fsFiles is what the CLI verifies for path: rotated files, oldest
// first, then path.
func fsFiles(t *testing.T, path string) []string {
	t.Helper()
	rotated, err := RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	return append(rotated, path)
}

func fsVerify(t *testing.T, opts VerifyOptions, files ...string) VerifyReport {
	t.Helper()
	rep, err := Verify(opts, files...)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func fsWantOK(t *testing.T, rep VerifyReport, records int) {
	t.Helper()
	if rep.FirstProblem != nil {
		t.Fatalf("chain broken: %s", rep.FirstProblem)
	}
	if rep.Records != records || rep.LastSeq != int64(records) {
		t.Fatalf("verified %d records up to seq %d, want %d", rep.Records, rep.LastSeq, records)
	}
}

func fsWantProblem(t *testing.T, rep VerifyReport, kind, file string, line int, seq int64, detail string) {
	t.Helper()
	p := rep.FirstProblem
	if p == nil {
		t.Fatalf("no problem found in %d records, want %s at %s:%d", rep.Records, kind, file, line)
	}
	if p.Kind != kind || p.File != file || p.Line != line || p.Seq != seq || !strings.Contains(p.Detail, detail) {
		t.Fatalf("problem %s\nwant       %s at %s:%d (seq %d): ...%s...", p, kind, file, line, seq, detail)
	}
}

func fsSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// fsWaitHealthy polls Healthy past the 100ms recovery rate limit.
func fsWaitHealthy(t *testing.T, s *FileSink) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		err := s.Healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink did not recover: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFileSinkWriteRestartVerify(t *testing.T) {
	cs := fixtureEntity(t)
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) {
			var key []byte
			if keyed {
				key = []byte("chain key")
			}
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path, ChainKey: key})
			fsWrite(t, s, cs, 1, 1000)
			fsWantOK(t, fsVerify(t, VerifyOptions{Key: key}, path), 1000)
			seq, hash := s.Head()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("file mode %v (%v), want 0600", fi.Mode(), err)
			}

			// A restart continues the chain from the file.
			s = fsOpen(t, FileSinkConfig{Path: path, ChainKey: key})
			if gs, gh := s.Head(); gs != seq || gh != hash {
				t.Fatalf("head after reopen %d %s, want %d %s", gs, gh, seq, hash)
			}
			fsWrite(t, s, cs, 1001, 1500)
			if w := s.Warnings(); len(w) != 0 {
				t.Errorf("warnings: %q", w)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rep := fsVerify(t, VerifyOptions{Key: key}, path)
			fsWantOK(t, rep, 1500)
			if rep.Files != 1 || rep.LastHash != lastHashOf(t, path) {
				t.Errorf("report %+v", rep)
			}
		})
	}
}

func lastHashOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	p, bad := parseLine(nil, lines[len(lines)-1])
	if p == nil {
		t.Fatal(bad)
	}
	return p.Hash
}

// TestFileSinkLine checks a written line: the record's fields exactly as
// the Caddy logger carries them, canonical, plus resetguard.chain.
func TestFileSinkLine(t *testing.T) {
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	r := fsRecord(cs, 7)
	if err := s.Write(r); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
		t.Fatalf("want one line: %q", b)
	}
	line := b[:len(b)-1]
	if !bytes.Contains(line, []byte(`"reason":"quote \" <b>&amp; \u2028 ü"`)) {
		t.Errorf("reason not canonically escaped (no HTML escaping, U+2028 escaped):\n%s", line)
	}
	wantChain := fmt.Sprintf(`"resetguard":{"chain":{"hash":"%s","prev":"%s","seq":1},"chat_session":`, r.Chain.Hash, GenesisHash)
	if !bytes.Contains(line, []byte(wantChain)) {
		t.Errorf("line lacks %s:\n%s", wantChain, line)
	}

	// The logger's copy of the same record (as Sink writes it, after
	// the file took it) holds the same fields, event.id included, but
	// not the chain: that is the durable file's alone.
	var logged map[string]any
	if err := json.Unmarshal([]byte(encode(t, r)), &logged); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"level", "ts", "logger", "msg"} {
		delete(logged, k)
	}
	if _, ok := logged["resetguard"].(map[string]any)["chain"]; ok {
		t.Errorf("the logger copy carries the chain: %v", logged["resetguard"])
	}
	var inFile map[string]any
	if err := json.Unmarshal(line, &inFile); err != nil {
		t.Fatal(err)
	}
	delete(inFile["resetguard"].(map[string]any), "chain")
	lj, _ := json.Marshal(logged)
	fj, _ := json.Marshal(inFile)
	if !bytes.Equal(lj, fj) {
		t.Errorf("file line and logger line differ:\nfile   %s\nlogger %s", fj, lj)
	}

	// The hash covers the canonical record without the chain.
	canonical, err := Canonical(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := chainHash(nil, GenesisHash, 1, canonical); got != r.Chain.Hash {
		t.Errorf("hash %s, want %s over %s", r.Chain.Hash, got, canonical)
	}
	if bytes.Contains(canonical, []byte(`"chain"`)) {
		t.Errorf("canonical form holds the chain: %s", canonical)
	}
}

func TestFileSinkFsyncModes(t *testing.T) {
	cs := fixtureEntity(t)
	for _, mode := range []FsyncMode{FsyncAlways, FsyncInterval, FsyncNever, ""} {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path, Fsync: mode, FsyncInterval: 10 * time.Millisecond})
			fsWrite(t, s, cs, 1, 20)
			switch mode {
			case FsyncAlways, "":
				if n := s.syncs.Load(); n < 20 {
					t.Errorf("%d fsyncs for 20 records", n)
				}
			case FsyncInterval:
				deadline := time.Now().Add(2 * time.Second)
				for s.syncs.Load() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("no background fsync")
					}
					time.Sleep(5 * time.Millisecond)
				}
				// Nothing new written: the loop does not fsync again.
				time.Sleep(50 * time.Millisecond)
				n := s.syncs.Load()
				time.Sleep(50 * time.Millisecond)
				if m := s.syncs.Load(); m != n {
					t.Errorf("idle sink fsynced %d more times", m-n)
				}
				if n > 20 {
					t.Errorf("%d fsyncs for 20 records", n)
				}
			case FsyncNever:
				if n := s.syncs.Load(); n != 0 {
					t.Errorf("%d fsyncs in never mode", n)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if mode == FsyncNever && s.syncs.Load() != 0 {
				t.Error("Close fsynced in never mode")
			}
			s = fsOpen(t, FileSinkConfig{Path: path, Fsync: mode})
			fsWrite(t, s, cs, 21, 25)
			s.Close()
			fsWantOK(t, fsVerify(t, VerifyOptions{}, path), 25)
		})
	}
}

func TestFileSinkClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, Fsync: FsyncInterval})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if err := s.Write(fsRecord(fixtureEntity(t), 1)); !errors.Is(err, ErrSinkClosed) {
		t.Errorf("write after close: %v", err)
	}
	if err := s.Healthy(); !errors.Is(err, ErrSinkClosed) {
		t.Errorf("healthy after close: %v", err)
	}
}

func TestOpenFileSinkErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  FileSinkConfig
		want string
	}{
		{"no path", FileSinkConfig{}, "no path"},
		{"missing directory", FileSinkConfig{Path: filepath.Join(dir, "nope", "audit.log")}, "directory"},
		{"path is a directory", FileSinkConfig{Path: dir}, "is a directory"},
		{"bad fsync mode", FileSinkConfig{Path: filepath.Join(dir, "a.log"), Fsync: "sometimes"}, "fsync mode"},
		{"negative interval", FileSinkConfig{Path: filepath.Join(dir, "a.log"), Fsync: FsyncInterval, FsyncInterval: -time.Second}, "negative"},
		{"negative max size", FileSinkConfig{Path: filepath.Join(dir, "a.log"), MaxSize: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenFileSink(tt.cfg)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func BenchmarkFileSinkWrite(b *testing.B) {
	cs := fixtureEntity(b)
	for _, mode := range []FsyncMode{FsyncAlways, FsyncInterval, FsyncNever} {
		b.Run(string(mode), func(b *testing.B) {
			s, err := OpenFileSink(FileSinkConfig{Path: filepath.Join(b.TempDir(), "audit.log"), Fsync: mode, MaxSize: 32 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			r := fsRecord(cs, 1)
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Write(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
