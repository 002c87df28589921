package audit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// diskFullMidWrite makes each write, while fault is set, write half the
// line and fail as a full disk does.
func diskFullMidWrite(s *FileSink, fault *atomic.Bool) {
	s.writeHook = func(f *os.File, p []byte) (int, error) {
		if fault.Load() {
			n, _ := f.Write(p[:len(p)/2])
			return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		return f.Write(p)
	}
}

// fsyncFails makes each fsync fail with EIO while fault is set.
func fsyncFails(s *FileSink, fault *atomic.Bool) {
	s.syncHook = func(f *os.File) error {
		if fault.Load() {
			return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
		}
		return f.Sync()
	}
}

// TestFileSinkWriteErrorsDoNotAdvance: a full disk mid-write and a failed
// fsync leave the chain where it was, make the sink unhealthy until the
// fault goes, and leave nothing of the failed record in the file.
func TestFileSinkWriteErrorsDoNotAdvance(t *testing.T) {
	cs := fixtureEntity(t)
	tests := []struct {
		name   string
		inject func(s *FileSink, fault *atomic.Bool)
		errno  syscall.Errno
	}{
		{"disk full mid-write", diskFullMidWrite, syscall.ENOSPC},
		{"fsync fails", fsyncFails, syscall.EIO},
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
			// A stopped clock: no recovery is due again until it moves.
			clock := stoppedClock(s)
			probes := s.probes.Load()
			if err := s.Healthy(); !errors.Is(err, tt.errno) {
				t.Errorf("healthy with the fault on: %v", err)
			}
			// The first Healthy after a failure starts a probe, in the
			// background: Healthy does not wait for the disk.
			waitFor(t, "the probe the first Healthy after a failure starts", func() bool { return s.probes.Load() == probes+1 })
			if err := s.Healthy(); !errors.Is(err, tt.errno) {
				t.Errorf("healthy with the fault on: %v", err)
			}
			if err := s.Write(r); !errors.Is(err, tt.errno) {
				t.Errorf("write with the fault on: %v", err)
			}
			if n := s.probes.Load(); n != probes+1 {
				t.Errorf("%d probes within 100ms, want 1", n-probes)
			}
			if got := fsSize(t, path); got != size {
				t.Errorf("file is %d bytes after the failed write, want %d (cut back)", got, size)
			}
			clock.Add(int64(probeEvery))

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
	cs := fixtureEntity(t)
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
	cs := fixtureEntity(t)
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
					if err := s.Healthy(); !errors.Is(err, ErrFileMoved) || !strings.Contains(err.Error(), "audit file moved or unmounted") {
						t.Fatalf("healthy: %v", err)
					}
					// The sink stops, then continues in a new file at the
					// path: its directory is the one it opened.
					fsWaitHealthy(t, s)
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
	cs := fixtureEntity(t)
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

	before, err := statID(dir)
	if err != nil {
		t.Fatal(err)
	}
	restore := makeDirUnwritable(t, dir, path, root)

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
	if root {
		// The new directory at the path is not the one the sink opened
		// (unless the file system gave it the same inode again): the sink
		// waits until the operator's Reopen (a config reload) adopts it.
		if after, err := statID(dir); err == nil && !after.same(before) {
			if err := s.Healthy(); !errors.Is(err, ErrFileMoved) {
				t.Fatalf("healthy with a new directory at the path: %v, want ErrFileMoved", err)
			}
		}
		if err := s.Reopen(); err != nil {
			t.Fatalf("reopen: %v", err)
		}
	}
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

// makeDirUnwritable stops dir taking writes, as TestFileSinkUnwritableDirectory
// describes, and returns what undoes it.
func makeDirUnwritable(t *testing.T, dir, path string, root bool) (restore func()) {
	t.Helper()
	if root {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
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
	return restore
}

// TestFileSinkBackgroundFsyncFailure: in interval mode a failed background
// fsync makes the sink unhealthy.
func TestFileSinkBackgroundFsyncFailure(t *testing.T) {
	cs := fixtureEntity(t)
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

// stoppedClock replaces s's clock with one that moves only when the test
// adds to it (nanoseconds), so that the 100ms between recovery attempts
// do not depend on how loaded the machine is. Call it before anything
// else uses s concurrently.
func stoppedClock(s *FileSink) *atomic.Int64 {
	var ns atomic.Int64
	ns.Store(time.Now().UnixNano())
	s.now = func() time.Time { return time.Unix(0, ns.Load()) }
	return &ns
}

// waitFor polls cond for up to 10s: for what happens in the sink's own
// background goroutines, which the test cannot wait on otherwise.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
