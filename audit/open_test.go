package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestFileSinkTornTail: what a crash mid-write leaves at the end of the
// live file, at the next open. A torn line is cut, saved beside the file
// and recorded; a complete record only lacking its newline is completed;
// foreign content stops the open.
func TestFileSinkTornTail(t *testing.T) {
	cs := fixtureEntity(t)
	tests := []struct {
		name    string
		records int // written before the damage
		damage  func(b []byte) []byte
		cut     bool   // the damage is a torn line to cut
		warning string // "" : open fails with wantErr
		wantErr string
	}{
		{"half a record", 5, func(b []byte) []byte { return append(b, `{"@timestamp":"2026-11-25T10:00:`...) }, true, "cut off an incomplete last line", ""},
		{"zeros after a power loss", 5, func(b []byte) []byte { return append(b, make([]byte, 300)...) }, true, "cut off an incomplete last line", ""},
		{"record 6 cut short after its chain", 6, func(b []byte) []byte { return b[:len(b)-40] }, true, "cut off an incomplete last line", ""},
		{"record without its newline", 5, func(b []byte) []byte { return b[:len(b)-1] }, false, "lacked its newline", ""},
		{"foreign JSON without a newline", 5, func(b []byte) []byte { return append(b, `{"note":"hand-written"}`...) }, false, "", "JSON but not a chained record"},
		{"foreign last line", 5, func(b []byte) []byte { return append(b, "{\"note\":\"hand-written\"}\n"...) }, false, "", "cannot continue the chain"},
		{"text last line", 5, func(b []byte) []byte { return append(b, "# rotated by hand\n"...) }, false, "", "cannot continue the chain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path})
			fsWrite(t, s, cs, 1, tt.records)
			s.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tt.damage(bytes.Clone(b))
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err = OpenFileSink(FileSinkConfig{Path: path})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("open: %v, want an error containing %q", err, tt.wantErr)
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, damaged) {
					t.Error("a refused open changed the file")
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
			if !tt.cut {
				if got, _ := os.ReadFile(path); !bytes.Equal(got, b) {
					t.Errorf("file after repair differs from the intact file (%d vs %d bytes)", len(got), len(b))
				}
				if seq, _ := s.Head(); seq != 5 {
					t.Errorf("head seq %d, want 5", seq)
				}
				if st := s.Stats(); st.TornCuts != 0 || len(s.OpenRecords()) != 0 {
					t.Errorf("stats %+v, open records %d: nothing was cut", st, len(s.OpenRecords()))
				}
				fsWrite(t, s, cs, 6, 8)
				s.Close()
				fsWantOK(t, fsVerify(t, VerifyOptions{}, path), 8)
				return
			}
			checkTornCut(t, s, path, damaged)
		})
	}
}

// checkTornCut checks an open that cut the torn end of damaged: the bytes
// saved beside the file, one repair record after the intact records that
// retires the next seq, Stats, and a chain that verifies and goes on
// without reusing the torn line's seq.
func checkTornCut(t *testing.T, s *FileSink, path string, damaged []byte) {
	t.Helper()
	cs := fixtureEntity(t)
	intact := damaged[:bytes.LastIndexByte(damaged, '\n')+1]
	torn := damaged[len(intact):]
	lastSeq := int64(bytes.Count(intact, []byte{'\n'}))

	saved, err := filepath.Glob(path + ".torn-*")
	if err != nil || len(saved) != 1 {
		t.Fatalf("torn files %v (%v), want one", saved, err)
	}
	if got, _ := os.ReadFile(saved[0]); !bytes.Equal(got, torn) {
		t.Errorf("%s holds %q, want the cut bytes %q", saved[0], got, torn)
	}
	if rotated, _ := RotatedFiles(path); len(rotated) != 0 {
		t.Errorf("rotated files %v: the torn file is not one", rotated)
	}

	got, _ := os.ReadFile(path)
	if !bytes.HasPrefix(got, intact) || bytes.Count(got[len(intact):], []byte{'\n'}) != 1 {
		t.Fatalf("file after the cut is not the intact records and one more line:\n%s", got[len(intact):])
	}
	sum := sha256.Sum256(torn)
	want := Repair{Bytes: int64(len(torn)), Offset: int64(len(intact)), SHA256: hex.EncodeToString(sum[:]),
		SavedAs: filepath.Base(saved[0]), RetiredSeq: lastSeq + 1}
	recs := s.OpenRecords()
	if len(recs) != 1 || recs[0].Kind != KindRepair || recs[0].Repair == nil || *recs[0].Repair != want {
		t.Fatalf("open records %+v, want one repair %+v", recs, want)
	}
	if c := recs[0].Chain; c == nil || c.Seq != lastSeq+2 {
		t.Errorf("repair record chain %+v, want seq %d (after the retired %d)", c, lastSeq+2, lastSeq+1)
	}
	validateFileLines(t, path)

	st := s.Stats()
	if st.TornCuts != 1 || st.TornBytes != int64(len(torn)) || st.LastTornFile != saved[0] || !st.Healthy || st.Seq != lastSeq+2 {
		t.Errorf("stats %+v, want 1 cut of %d bytes saved as %s, healthy, seq %d", st, len(torn), saved[0], lastSeq+2)
	}

	fsWrite(t, s, cs, 100, 102)
	if r := s.OpenRecords(); len(r) != 1 {
		t.Errorf("%d open records after writes, want still 1", len(r))
	}
	s.Close()
	rep := fsVerify(t, VerifyOptions{}, path)
	if rep.FirstProblem != nil || rep.LastSeq != lastSeq+5 || rep.Records != int(lastSeq)+4 || rep.Repairs != 1 {
		t.Fatalf("verify: %+v, want %d records up to seq %d with one repair", rep, lastSeq+4, lastSeq+5)
	}
	checkSeqsUnique(t, path, torn)

	// Nothing left to repair: a second open appends nothing.
	s2 := fsOpen(t, FileSinkConfig{Path: path})
	if len(s2.OpenRecords()) != 0 || s2.Stats().TornCuts != 0 {
		t.Errorf("second open: %d records appended, stats %+v", len(s2.OpenRecords()), s2.Stats())
	}
}

var seqRE = regexp.MustCompile(`"seq":([0-9]+)`)

// checkSeqsUnique fails if two lines of path share a seq, or a line has
// the seq the torn bytes carry (if they got that far).
func checkSeqsUnique(t *testing.T, path string, torn []byte) {
	t.Helper()
	b, _ := os.ReadFile(path)
	seen := map[string]int{}
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte{'\n'}), []byte{'\n'}) {
		p, why := parseLine(nil, line)
		if p == nil {
			t.Fatalf("line %d: %s", i+1, why)
		}
		seq := string(seqRE.FindSubmatch(line)[1])
		if j, dup := seen[seq]; dup {
			t.Errorf("lines %d and %d both have seq %s", j, i+1, seq)
		}
		seen[seq] = i + 1
	}
	if m := seqRE.FindSubmatch(torn); m != nil {
		if j, reused := seen[string(m[1])]; reused {
			t.Errorf("line %d reuses seq %s of the torn line", j, m[1])
		}
	}
}

// validateFileLines validates the lines of a durable file that have a
// kind (the ones the write-ahead protocol and the sink write) against the
// published schema. fsRecord's records are left out: they break its
// invariants on purpose (a reason on success, to exercise escaping).
func validateFileLines(t *testing.T, path string) {
	t.Helper()
	sch := auditSchema(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.Contains(line, `"kind":"`+KindIntent+`"`) && !strings.Contains(line, `"kind":"`+KindOutcome+`"`) &&
			!strings.Contains(line, `"kind":"`+KindRefusal+`"`) && !strings.Contains(line, `"kind":"`+KindRepair+`"`) {
			continue
		}
		if err := sch.Validate(decodeLine(t, line)); err != nil {
			t.Errorf("%s:%d does not validate: %v\n%s", path, i+1, err, line)
		}
	}
}

// TestTornLineNotSavedNotCut: when the cut bytes cannot be saved, nothing
// is cut and the open fails.
func TestTornLineNotSavedNotCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	fsWrite(t, s, fixtureEntity(t), 1, 2)
	s.Close()
	b, _ := os.ReadFile(path)
	damaged := append(bytes.Clone(b), `{"@timestamp":"2026`...)
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	// The first open's path to the cut, with an fsync that fails: the
	// saved copy cannot be made durable.
	sink := &FileSink{cfg: FileSinkConfig{Path: path, Fsync: FsyncAlways}, now: s.now, opening: true,
		syncHook: func(*os.File) error { return os.ErrPermission }}
	if _, _, err := sink.repairTail(f, fi); err == nil || !strings.Contains(err.Error(), "saving the incomplete last line") {
		t.Fatalf("repairTail: %v, want a saving error", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, damaged) {
		t.Error("the file was cut although its torn end was not saved")
	}
	if saved, _ := filepath.Glob(path + ".torn-*"); len(saved) != 0 {
		t.Errorf("an unsaved copy was left: %v", saved)
	}
	if st := sink.Stats(); st.TornCuts != 0 {
		t.Errorf("stats %+v count a cut that was not made", st)
	}
}

// TestTornLineWhereTheChainContinues: the seq a torn line retires is the
// one after the chain's head, wherever the head is: in the live file, in
// the rotated file before a fresh live file, or nowhere yet. A torn
// outcome leaves its intent open, which the same open closes.
func TestTornLineWhereTheChainContinues(t *testing.T) {
	cs := fixtureEntity(t)
	tests := []struct {
		name        string
		script      string // walScript steps written before the crash
		retired     int64
		restarted   int   // gateway_restarted outcomes appended
		wantRecords int64 // verified after the open
	}{
		{"nothing but a torn line", "", 1, 0, 1},
		{"fresh live file after a rotation", "I1 O1 R2 |", 4, 0, 4},
		{"a torn outcome", "I1 O1 I2", 4, 1, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			w := &walScript{t: t, s: fsOpen(t, FileSinkConfig{Path: path}), cs: cs, intent: map[int]*Record{}}
			w.run(tt.script)
			if w.s.cfg.MaxSize == 1 { // "|" at the end: rotate as the next write would
				w.s.mu.Lock()
				if err := w.s.rotateLocked(); err != nil {
					t.Fatal(err)
				}
				w.s.mu.Unlock()
			}
			w.s.Close()
			torn := `{"@timestamp":"2026-11-25T10:00:09Z","ecs":{"version":"8.11"},"event":{"action":"chat_session.reset"`
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(torn)
			f.Close()

			s := fsOpen(t, FileSinkConfig{Path: path})
			recs := s.OpenRecords()
			if len(recs) != 1+tt.restarted || recs[0].Repair == nil || recs[0].Repair.RetiredSeq != tt.retired || recs[0].Chain.Seq != tt.retired+1 {
				t.Fatalf("open records %+v, want a repair retiring seq %d and %d gateway_restarted", recs, tt.retired, tt.restarted)
			}
			for _, r := range recs[1:] {
				checkGatewayRestarted(t, r, w.intent[2])
			}
			s.Close()
			rep := fsVerify(t, VerifyOptions{}, fsFiles(t, path)...)
			if rep.FirstProblem != nil || int64(rep.Records) != tt.wantRecords+int64(tt.restarted) || rep.OpenIntents != 0 || rep.Repairs != 1 {
				t.Fatalf("verify: %+v", rep)
			}
			validateFileLines(t, path)
		})
	}
}
