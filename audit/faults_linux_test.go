package audit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Fault tests that need Linux, and root for mount and chattr: each skips
// with the reason when the machine does not let it.

// mountOrSkip mounts, or skips the test saying why it cannot. Registered
// before the sink is opened, the unmount runs after the sink's Close.
func mountOrSkip(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
		what := fstype
		if flags&syscall.MS_BIND != 0 {
			what = "a bind mount of " + source
		}
		t.Skipf("skipped: cannot mount %s on %s here (%v); needs root (CAP_SYS_ADMIN)", what, target, err)
	}
	t.Cleanup(func() {
		for syscall.Unmount(target, syscall.MNT_DETACH) == nil {
		}
	})
}

// TestFileSinkFaultImmutableFile: the live file made immutable (chattr +i,
// which stops root too) under load: writes are refused with EPERM and
// the records written but not yet fsynced cannot be cut until it is
// writable again, when the sink recovers.
func TestFileSinkFaultImmutableFile(t *testing.T) {
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("skipped: chattr is not installed")
	}
	dir := t.TempDir()
	scratch := filepath.Join(dir, "scratch")
	if err := os.WriteFile(scratch, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(chattr, "+i", scratch).CombinedOutput(); err != nil {
		t.Skipf("skipped: chattr +i does not work here (%v: %s); needs root and a file system with the immutable flag", err, out)
	}
	exec.Command(chattr, "-i", scratch).Run()
	path := filepath.Join(dir, "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	stopHealth := watchHealthy(t, s)
	l := startLoad(t, s, 4)
	l.more(t, 20)
	if out, err := exec.Command(chattr, "+i", path).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(chattr, "-i", path).Run() })
	l.moreErrors(t, 8)
	if err := timed(t, "Healthy with the file immutable", time.Second, s.Healthy); !errors.Is(err, syscall.EPERM) {
		t.Errorf("healthy with the file immutable: %v, want EPERM", err)
	}
	if out, err := exec.Command(chattr, "-i", path).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v: %s", err, out)
	}
	recoverAndCheck(t, s, l, stopHealth, path)
}

// TestFileSinkFaultDiskFull: a 64 KiB tmpfs filled by the audit file and
// a filler: writes are refused (ENOSPC, a partial line cut back), Healthy
// says so; the filler removed, the sink recovers.
func TestFileSinkFaultDiskFull(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mountOrSkip(t, "tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700")
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 40<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	stopHealth := watchHealthy(t, s)
	l := startLoad(t, s, 4)
	l.moreErrors(t, 8)
	// Stopped, or the writers would fill the space freed below at once.
	l.finish()
	stopHealth()
	if err := timed(t, "Healthy with the disk full", time.Second, s.Healthy); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("healthy with the disk full: %v, want ENOSPC", err)
	}
	err := timed(t, "a Write with the disk full", time.Second, func() error { return s.Write(fsRecord(fixtureEntity(t), 1)) })
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write with the disk full: %v, want ENOSPC", err)
	}
	full, _ := l.a.count()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	fsWaitHealthy(t, s)
	cs := fixtureEntity(t)
	for i := range 10 {
		r := fsRecord(cs, 100000+i)
		err := s.Write(r)
		if err != nil {
			t.Errorf("write %d after space was freed: %v", i, err)
		}
		l.a.note(t, r, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records before the disk was full", full)
	wantExactly(t, l, path)
}

// TestFileSinkFaultLazyUnmount: the audit directory's file system is
// unmounted with umount -l under load. The path then shows the directory
// underneath: the sink refuses and writes nothing there. It resumes by
// itself when the same directory is mounted back; a different file
// system mounted there is not the operator's directory until Reopen (a
// config reload) adopts it, and the new file continues the chain.
func TestFileSinkFaultLazyUnmount(t *testing.T) {
	t.Run("bind mount back", func(t *testing.T) {
		root := t.TempDir()
		src, dir := filepath.Join(root, "src"), filepath.Join(root, "logs")
		for _, d := range []string{src, dir} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		mountOrSkip(t, src, dir, "", syscall.MS_BIND, "")
		s := fsOpen(t, FileSinkConfig{Path: filepath.Join(dir, "audit.log")})
		stopHealth := watchHealthy(t, s)
		l := startLoad(t, s, 4)
		l.more(t, 20)
		lazyUnmount(t, s, l, dir)
		if err := syscall.Mount(src, dir, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		recoverAndCheck(t, s, l, stopHealth, filepath.Join(src, "audit.log"))
	})
	t.Run("new file system, Reopen", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "logs")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		mountOrSkip(t, "tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700")
		path := filepath.Join(dir, "audit.log")
		s := fsOpen(t, FileSinkConfig{Path: path})
		stopHealth := watchHealthy(t, s)
		l := startLoad(t, s, 4)
		l.more(t, 20)
		// The old file system stays reachable through an open directory.
		keep, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer keep.Close()
		lazyUnmount(t, s, l, dir)
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
			t.Fatal(err)
		}
		wantNothingWritten(t, s, dir)
		if err := timed(t, "Reopen", time.Second, s.Reopen); err != nil {
			t.Fatalf("reopen: %v", err)
		}
		l.more(t, 20)
		l.finish()
		stopHealth()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wantExactly(t, l, fmt.Sprintf("/proc/self/fd/%d/audit.log", keep.Fd()), path)
	})
}

// lazyUnmount detaches dir's file system under load and checks that the
// sink refuses and writes nothing to the directory underneath.
func lazyUnmount(t *testing.T, s *FileSink, l *load, dir string) {
	t.Helper()
	if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	l.moreErrors(t, 8)
	wantNothingWritten(t, s, dir)
}

// wantNothingWritten lets the sink try to recover a few times and checks
// that it still refuses, with ErrFileMoved, and left dir empty.
func wantNothingWritten(t *testing.T, s *FileSink, dir string) {
	t.Helper()
	probes := s.probes.Load()
	waitFor(t, "recovery attempts", func() bool { s.Healthy(); return s.probes.Load() >= probes+3 })
	if err := timed(t, "Healthy", time.Second, s.Healthy); !errors.Is(err, ErrFileMoved) {
		t.Errorf("healthy: %v, want ErrFileMoved", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("the sink wrote %s into a directory that is not the one it opened", e.Name())
	}
}

// TestFileSinkFaultFIFOAtPath: the live file replaced by a FIFO. Opening
// it for writing would wait for a reader, with the writer lock held: the
// sink opens without waiting and refuses what is not a regular file, and
// resumes in a new file when the FIFO is gone.
func TestFileSinkFaultFIFOAtPath(t *testing.T) {
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	fsWrite(t, s, cs, 1, 5)
	moved := path + ".moved"
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("skipped: mkfifo: %v", err)
	}
	r := fsRecord(cs, 6)
	for range 2 { // noticing the move, then a recovery attempt
		if err := timed(t, "a Write with a FIFO at the path", time.Second, func() error { return s.Write(r) }); err == nil {
			t.Fatal("wrote with a FIFO at the path")
		}
	}
	// With a reader the FIFO opens; it is still not a regular file.
	reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	probes := s.probes.Load()
	waitFor(t, "a recovery attempt", func() bool { s.Healthy(); return s.probes.Load() > probes })
	if err := timed(t, "Healthy with a FIFO at the path", time.Second, s.Healthy); err == nil {
		t.Error("healthy with a FIFO at the path")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	fsWaitHealthy(t, s)
	fsWrite(t, s, cs, 6, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fsWantOK(t, fsVerify(t, VerifyOptions{}, moved, path), 10)
}
