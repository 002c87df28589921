package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFileSinkConcurrentRotation: 16 writers, a small MaxSize and a
// background fsync racing the rotations: every record lands whole in
// exactly one file and the chain runs across all of them.
func TestFileSinkConcurrentRotation(t *testing.T) {
	const writers, each, maxSize = 16, 200, 16 << 10
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, MaxSize: maxSize, Fsync: FsyncInterval, FsyncInterval: time.Millisecond})
	seqs := make([][]int64, writers)
	writeConcurrently(s, cs, writers, each, func(w int, r *Record, err error) bool {
		if err != nil {
			t.Error(err)
			return false
		}
		seqs[w] = append(seqs[w], r.Chain.Seq)
		return true
	})
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
	cs := fixtureEntity(t)
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
