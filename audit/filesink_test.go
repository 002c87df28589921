package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fsChatSession is the reset fixture's entity, as the handler records it.
func fsChatSession(tb testing.TB) *ChatSession {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "entities", "reset.json"))
	if err != nil {
		tb.Fatal(err)
	}
	cs, err := DecodeEntity(b, "application/json", "", 0)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// fsRecord is a realistic record, the i-th of a run; its reason needs
// escaping (quote, HTML characters, U+2028, non-ASCII).
func fsRecord(cs *ChatSession, i int) *Record {
	id := fmt.Sprintf("req-%06d", i)
	return &Record{
		Timestamp: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		EventID:   id, RequestID: id, Action: "chat_session.reset", Allowed: i%3 != 0,
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
	cs := fsChatSession(t)
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
	cs := fsChatSession(t)
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

	// The logger's copy of the same record (as Sink writes it, now with
	// the chain) holds the same fields.
	var logged map[string]any
	if err := json.Unmarshal([]byte(encode(t, r)), &logged); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"level", "ts", "logger", "msg"} {
		delete(logged, k)
	}
	var inFile map[string]any
	if err := json.Unmarshal(line, &inFile); err != nil {
		t.Fatal(err)
	}
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
	cs := fsChatSession(t)
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

// TestFileSinkConcurrentRotation: 16 writers, a small MaxSize and a
// background fsync racing the rotations: every record lands whole in
// exactly one file and the chain runs across all of them.
func TestFileSinkConcurrentRotation(t *testing.T) {
	const writers, each, maxSize = 16, 200, 16 << 10
	cs := fsChatSession(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, MaxSize: maxSize, Fsync: FsyncInterval, FsyncInterval: time.Millisecond})
	seqs := make([][]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := fsRecord(cs, w*each+i)
				if err := s.Write(r); err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], r.Chain.Seq)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings: %q", w)
	}
	all := slices.Concat(seqs...)
	slices.Sort(all)
	for i, seq := range all {
		if seq != int64(i+1) {
			t.Fatalf("seqs handed out: %v... want 1..%d once each", all[:i+1], writers*each)
		}
	}

	files := fsFiles(t, path)
	if len(files) < 10 {
		t.Fatalf("only %d files: rotation did not happen", len(files))
	}
	lines := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) > maxSize {
			t.Errorf("%s: %d bytes, over MaxSize", f, len(b))
		}
		if len(b) == 0 || b[len(b)-1] != '\n' {
			t.Errorf("%s: does not end in a newline", f)
		}
		for l := range bytes.SplitSeq(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			lines++
			if !json.Valid(l) {
				t.Fatalf("%s: invalid line %q", f, l)
			}
		}
		if f != path && !isRotatedStamp(strings.TrimPrefix(f, path+".")) {
			t.Errorf("rotated name %s", f)
		}
	}
	if lines != writers*each {
		t.Errorf("%d lines in %d files, want %d", lines, len(files), writers*each)
	}
	rep := fsVerify(t, VerifyOptions{}, files...)
	fsWantOK(t, rep, writers*each)
	if rep.Files != len(files) {
		t.Errorf("verified %d files, want %d", rep.Files, len(files))
	}
}

// TestFileSinkContinuesFromRotated: with the live file empty or missing,
// the chain continues from the newest rotated file.
func TestFileSinkContinuesFromRotated(t *testing.T) {
	cs := fsChatSession(t)
	for _, live := range []string{"missing", "empty"} {
		t.Run(live, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path, MaxSize: 8 << 10})
			fsWrite(t, s, cs, 1, 30)
			seq, hash := s.Head()
			s.Close()
			// Rotate the live file by hand, as the sink names it.
			later := time.Now().UTC().Add(time.Hour).Format(RotatedTimeFormat)
			if err := os.Rename(path, path+"."+later); err != nil {
				t.Fatal(err)
			}
			if live == "empty" {
				if err := os.WriteFile(path, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s = fsOpen(t, FileSinkConfig{Path: path, MaxSize: 8 << 10})
			if gs, gh := s.Head(); gs != seq || gh != hash {
				t.Fatalf("head %d %s, want %d %s", gs, gh, seq, hash)
			}
			fsWrite(t, s, cs, 31, 40)
			s.Close()
			// A rotation after the hand-made one sorts after it.
			files := fsFiles(t, path)
			if !slices.IsSorted(files[:len(files)-1]) || !slices.Contains(files, path+"."+later) {
				t.Fatalf("files %v", files)
			}
			fsWantOK(t, fsVerify(t, VerifyOptions{}, files...), 40)
		})
	}
}

// TestFileSinkTornTail: what a crash mid-write leaves at the end of the
// live file, at the next open.
func TestFileSinkTornTail(t *testing.T) {
	cs := fsChatSession(t)
	tests := []struct {
		name    string
		damage  func(b []byte) []byte
		warning string // "" : open fails with wantErr
		wantErr string
	}{
		{"half a record", func(b []byte) []byte { return append(b, `{"@timestamp":"2026-11-25T10:00:`...) }, "cut off an incomplete last line", ""},
		{"zeros after a power loss", func(b []byte) []byte { return append(b, make([]byte, 300)...) }, "cut off an incomplete last line", ""},
		{"record without its newline", func(b []byte) []byte { return b[:len(b)-1] }, "lacked its newline", ""},
		{"foreign JSON without a newline", func(b []byte) []byte { return append(b, `{"note":"hand-written"}`...) }, "", "JSON but not a chained record"},
		{"foreign last line", func(b []byte) []byte { return append(b, "{\"note\":\"hand-written\"}\n"...) }, "", "cannot continue the chain"},
		{"text last line", func(b []byte) []byte { return append(b, "# rotated by hand\n"...) }, "", "cannot continue the chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path})
			fsWrite(t, s, cs, 1, 5)
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.damage(bytes.Clone(b)), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = OpenFileSink(FileSinkConfig{Path: path})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open: %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], tt.warning) {
				t.Errorf("warnings %q, want one containing %q", w, tt.warning)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
				t.Errorf("file after repair differs from the intact file (%d vs %d bytes)", len(got), len(b))
			}
			if seq, _ := s.Head(); seq != 5 {
				t.Errorf("head seq %d, want 5", seq)
			}
			fsWrite(t, s, cs, 6, 8)
			s.Close()
			fsWantOK(t, fsVerify(t, VerifyOptions{}, path), 8)
		})
	}
}

// TestFileSinkWriteErrorsDoNotAdvance: a full disk mid-write and a failed
// fsync leave the chain where it was, make the sink unhealthy until the
// fault goes, and leave nothing of the failed record in the file.
func TestFileSinkWriteErrorsDoNotAdvance(t *testing.T) {
	cs := fsChatSession(t)
	tests := []struct {
		name   string
		inject func(s *FileSink, fault *atomic.Bool)
		errno  syscall.Errno
	}{
		{"disk full mid-write", func(s *FileSink, fault *atomic.Bool) {
			s.writeHook = func(f *os.File, p []byte) (int, error) {
				if fault.Load() {
					n, _ := f.Write(p[:len(p)/2])
					return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
				}
				return f.Write(p)
			}
		}, syscall.ENOSPC},
		{"fsync fails", func(s *FileSink, fault *atomic.Bool) {
			s.syncHook = func(f *os.File) error {
				if fault.Load() {
					return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
				}
				return f.Sync()
			}
		}, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path})
			var fault atomic.Bool
			tt.inject(s, &fault)
			fsWrite(t, s, cs, 1, 5)
			seq, hash := s.Head()
			size := fsSize(t, path)

			fault.Store(true)
			r := fsRecord(cs, 6)
			err := s.Write(r)
			if !errors.Is(err, tt.errno) {
				t.Fatalf("write: %v, want %v", err, tt.errno)
			}
			if r.Chain != nil {
				t.Errorf("failed write set the chain: %+v", r.Chain)
			}
			if gs, gh := s.Head(); gs != seq || gh != hash {
				t.Errorf("failed write advanced the head to %d", gs)
			}
			probes := s.probes.Load()
			if err := s.Healthy(); !errors.Is(err, tt.errno) {
				t.Errorf("healthy with the fault on: %v", err)
			}
			if s.probes.Load() != probes+1 {
				t.Errorf("the first Healthy after a failure did not probe")
			}
			if err := s.Healthy(); err == nil {
				t.Error("healthy with the fault on")
			}
			if err := s.Write(r); err == nil {
				t.Error("write succeeded with the fault on")
			}
			if s.probes.Load() != probes+1 {
				t.Errorf("%d probes within 100ms, want 1", s.probes.Load()-probes)
			}
			if got := fsSize(t, path); got != size {
				t.Errorf("file is %d bytes after the failed write, want %d (cut back)", got, size)
			}

			fault.Store(false)
			fsWaitHealthy(t, s)
			if err := s.Write(r); err != nil {
				t.Fatal(err)
			}
			if r.Chain.Seq != 6 || r.Chain.Prev != hash {
				t.Errorf("chain after recovery %+v, want seq 6 after %s", r.Chain, hash)
			}
			fsWrite(t, s, cs, 7, 10)
			s.Close()
			fsWantOK(t, fsVerify(t, VerifyOptions{}, path), 10)
		})
	}
}

// TestFileSinkFailedRecordCutAtClose: closing an unhealthy sink removes
// the record whose fsync failed, so that a restart does not take it for
// part of the chain.
func TestFileSinkFailedRecordCutAtClose(t *testing.T) {
	cs := fsChatSession(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	fsWrite(t, s, cs, 1, 3)
	size := fsSize(t, path)
	s.syncHook = func(*os.File) error { return syscall.EIO }
	if err := s.Write(fsRecord(cs, 4)); err == nil {
		t.Fatal("write succeeded")
	}
	s.syncHook = nil
	s.Close()
	if got := fsSize(t, path); got != size {
		t.Fatalf("file is %d bytes, want %d", got, size)
	}
	s = fsOpen(t, FileSinkConfig{Path: path})
	if seq, _ := s.Head(); seq != 3 {
		t.Fatalf("head %d after restart, want 3", seq)
	}
}

// TestFileSinkRemovedWhileOpen: the live file removed (or renamed) under
// the sink. It is noticed by Healthy or Write, reported once, and the
// next call creates a new live file where the chain continues. Records of
// a removed file are gone: verifying the new file alone reports them as
// deleted at its first line; a renamed file verifies in its place.
func TestFileSinkRemovedWhileOpen(t *testing.T) {
	cs := fsChatSession(t)
	for _, how := range []string{"removed", "renamed"} {
		for _, by := range []string{"Healthy", "Write"} {
			t.Run(how+"/noticed by "+by, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "audit.log")
				s := fsOpen(t, FileSinkConfig{Path: path})
				fsWrite(t, s, cs, 1, 10)
				moved := path + ".moved"
				if how == "removed" {
					if err := os.Remove(path); err != nil {
						t.Fatal(err)
					}
				} else if err := os.Rename(path, moved); err != nil {
					t.Fatal(err)
				}

				if by == "Healthy" {
					if err := s.Healthy(); err == nil || !strings.Contains(err.Error(), "removed or replaced") {
						t.Fatalf("healthy: %v", err)
					}
					if err := s.Healthy(); err != nil {
						t.Fatalf("no recovery: %v", err)
					}
				} else {
					// The handler retries a failed write once.
					r := fsRecord(cs, 11)
					if err := s.Write(r); err == nil || r.Chain != nil {
						t.Fatalf("write to a removed file: %v %+v", err, r.Chain)
					}
					if err := s.Write(r); err != nil || r.Chain.Seq != 11 {
						t.Fatalf("retry: %v %+v", err, r.Chain)
					}
				}
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("no new live file: %v", err)
				}
				if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "records seq 1..10") {
					t.Errorf("warnings %q", w)
				}
				from := 11
				if by == "Write" {
					from = 12
				}
				fsWrite(t, s, cs, from, 15)
				s.Close()

				if how == "renamed" {
					fsWantOK(t, fsVerify(t, VerifyOptions{}, moved, path), 15)
					return
				}
				fsWantProblem(t, fsVerify(t, VerifyOptions{}, path), ProblemDeleted, path, 1, 11, "records seq 1..10 are missing")
				rep := fsVerify(t, VerifyOptions{Partial: true}, path)
				if rep.FirstProblem != nil || rep.Records != 5 || rep.LastSeq != 15 {
					t.Errorf("partial verification: %+v %v", rep, rep.FirstProblem)
				}
			})
		}
	}
}

// TestFileSinkUnwritableDirectory: the directory stops taking writes.
// As a normal user: the file made read-only (0400) and the directory too
// (0500), with the next record due to rotate, which needs the directory.
// As root, whom permissions do not stop: the directory is replaced by a
// regular file (taking the live file with it), and restored empty.
func TestFileSinkUnwritableDirectory(t *testing.T) {
	cs := fsChatSession(t)
	root := os.Geteuid() == 0
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	cfg := FileSinkConfig{Path: path}
	if !root {
		canonical, err := Canonical(fsRecord(cs, 1))
		if err != nil {
			t.Fatal(err)
		}
		l := int64(len(canonical) + 200) // with the chain
		cfg.MaxSize = 2*l + l/2          // the third record rotates
	}
	s := fsOpen(t, cfg)
	fsWrite(t, s, cs, 1, 2)

	var restore func()
	if root {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		restore = func() {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		if err := os.Chmod(path, 0o400); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		restored := false
		restore = func() {
			if !restored {
				restored = true
				os.Chmod(dir, 0o700)
				os.Chmod(path, 0o600)
			}
		}
		t.Cleanup(restore)
	}

	r := fsRecord(cs, 3)
	if err := s.Write(r); err == nil {
		t.Fatal("write succeeded in an unwritable directory")
	}
	if r.Chain != nil {
		t.Fatalf("failed write set the chain %+v", r.Chain)
	}
	if err := s.Healthy(); err == nil {
		t.Fatal("healthy in an unwritable directory")
	}
	if err := s.Healthy(); err == nil {
		t.Fatal("healthy in an unwritable directory")
	}
	if seq, _ := s.Head(); seq != 2 {
		t.Fatalf("head %d, want 2", seq)
	}

	restore()
	fsWaitHealthy(t, s)
	if err := s.Write(r); err != nil {
		t.Fatal(err)
	}
	if r.Chain.Seq != 3 {
		t.Fatalf("seq %d after recovery, want 3", r.Chain.Seq)
	}
	fsWrite(t, s, cs, 4, 5)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := fsFiles(t, path)
	if root {
		// The directory went with records 1 and 2.
		fsWantProblem(t, fsVerify(t, VerifyOptions{}, files...), ProblemDeleted, path, 1, 3, "records seq 1..2 are missing")
		return
	}
	if len(files) != 3 { // records 1-2, 3-4 and 5
		t.Errorf("files %v, want two rotated and the live file", files)
	}
	fsWantOK(t, fsVerify(t, VerifyOptions{}, files...), 5)
}

// TestFileSinkBackgroundFsyncFailure: in interval mode a failed background
// fsync makes the sink unhealthy.
func TestFileSinkBackgroundFsyncFailure(t *testing.T) {
	cs := fsChatSession(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFileSink(FileSinkConfig{Path: path, Fsync: FsyncInterval, FsyncInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var fault atomic.Bool
	fault.Store(true)
	s.mu.Lock()
	s.syncHook = func(f *os.File) error {
		if fault.Load() {
			return syscall.EIO
		}
		return f.Sync()
	}
	s.mu.Unlock()
	fsWrite(t, s, cs, 1, 3)
	deadline := time.Now().Add(2 * time.Second)
	for s.Healthy() == nil {
		if time.Now().After(deadline) {
			t.Fatal("a failed background fsync left the sink healthy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fault.Store(false)
	fsWaitHealthy(t, s)
	fsWrite(t, s, cs, 4, 5)
	s.Close()
	fsWantOK(t, fsVerify(t, VerifyOptions{}, path), 5)
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
	if err := s.Write(fsRecord(fsChatSession(t), 1)); !errors.Is(err, ErrSinkClosed) {
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
	cs := fsChatSession(b)
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
