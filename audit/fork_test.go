package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestFileSinkDirectoryRenamedUnderLoad: the audit directory is renamed
// away while concurrent writers wait for a slow fsync, and the operator
// creates a new one at the path. On main this forked the chain: the
// writer that noticed the move rolled the head back to the last fsynced
// record although the records after it were already in the moved file,
// then the new file handed out their seqs again (seq 6..13 in both files
// with different records). Now the records in the moved file are fsynced
// there and kept in the chain; the sink refuses, because the directory at
// the path is not the one it opened, until the operator's Reopen; the new
// file then continues the chain after the moved one. Every acknowledged
// record is in one of the files, no seq names two records, and verifying
// the old file then the new one passes.
func TestFileSinkDirectoryRenamedUnderLoad(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncAlways, FsyncInterval, FsyncNever} {
		t.Run(string(mode), func(t *testing.T) { testDirectoryRenamedUnderLoad(t, mode) })
	}
}

func testDirectoryRenamedUnderLoad(t *testing.T, mode FsyncMode) {
	cs := fixtureEntity(t)
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, Fsync: mode})
	a := newAcked()
	for i := range 5 {
		r := fsRecord(cs, i)
		a.note(t, r, s.Write(r))
	}
	// In always mode the next fsync waits until the directory has moved,
	// so that records are written but not yet durable when it moves.
	b := newBlockOnce()
	if mode == FsyncAlways {
		b.armed.Store(true)
		s.syncHook = func(f *os.File) error {
			b.maybeBlock()
			return f.Sync()
		}
	}
	stopHealth := watchHealthy(t, s)
	l := startLoadWith(t, s, 8, a)
	// Eight writers, each with a record written (in always mode, each
	// waiting for the held fsync).
	waitFor(t, "records written", func() bool { seq, _ := s.Head(); return seq >= 13 })

	old := dir + ".old"
	if err := os.Rename(dir, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	err := s.Write(fsRecord(cs, 999))
	if err == nil {
		err = s.Write(fsRecord(cs, 998))
	}
	if !errors.Is(err, ErrFileMoved) {
		t.Fatalf("write after the directory moved: %v, want ErrFileMoved", err)
	}
	close(b.release)
	if _, err := os.Stat(path); err == nil {
		t.Fatal("the sink wrote to the new directory before the operator's Reopen")
	}
	if err := s.Reopen(); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	l.more(t, 16)
	l.finish()
	stopHealth()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	oldPath := filepath.Join(old, "audit.log")
	wantExactly(t, l, oldPath, path)
	// The new file alone names what is missing: the moved file's records.
	oldN := len(fileChain(t, oldPath))
	fsWantProblem(t, fsVerify(t, VerifyOptions{}, path), ProblemDeleted, path, 1, int64(oldN+1),
		fmt.Sprintf("records seq 1..%d are missing", oldN))
	t.Logf("%d records in the moved file, %d in the new one", oldN, len(fileChain(t, path)))
}
