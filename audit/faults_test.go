package audit

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The fault tests run concurrent writers against a real file while a fault
// comes and goes, and check what an operator relies on: no Write that
// returned nil is lost or unchained (and none that failed left its record
// in the file), Healthy answers within a second throughout, and the chain
// verifies afterwards.

// testWriteTimeout is the sinks' WriteTimeout in the stall tests: short, so
// that the tests are quick, with generous margins in what they assert.
const testWriteTimeout = 200 * time.Millisecond

// load is a set of writers writing until stopped, each retrying a failed
// write once, as the handler does.
type load struct {
	a    *acked
	stop chan struct{}
	wg   sync.WaitGroup
	// slowest is the longest Write call, in nanoseconds.
	slowest atomic.Int64
}

func startLoad(t *testing.T, s *FileSink, writers int) *load {
	return startLoadWith(t, s, writers, newAcked())
}

// startLoadWith is startLoad adding to what a holds.
func startLoadWith(t *testing.T, s *FileSink, writers int, a *acked) *load {
	cs := fixtureEntity(t)
	l := &load{a: a, stop: make(chan struct{})}
	for w := range writers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				r := fsRecord(cs, 1000*(w+1)+i)
				start := time.Now()
				err := s.Write(r)
				if err != nil {
					err = s.Write(r)
				}
				if d := int64(time.Since(start)); d > l.slowest.Load() {
					l.slowest.Store(d)
				}
				l.a.note(t, r, err)
				if err != nil {
					// Refusals are fast: pace them, to leave the CPU to the
					// sink (not a synchronisation).
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	return l
}

// more waits until n more writes than now were acknowledged.
func (l *load) more(t *testing.T, n int) {
	t.Helper()
	base, _ := l.a.count()
	waitFor(t, "acknowledged writes", func() bool { ok, _ := l.a.count(); return ok >= base+n })
}

// moreErrors waits until n more writes than now failed.
func (l *load) moreErrors(t *testing.T, n int) {
	t.Helper()
	_, base := l.a.count()
	waitFor(t, "refused writes", func() bool { _, failed := l.a.count(); return failed >= base+n })
}

func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// wantExactly checks after a fault test that the file holds exactly the
// acknowledged records, no others (a failed write's record was cut), and
// verifies.
func wantExactly(t *testing.T, l *load, files ...string) {
	t.Helper()
	wantNoForkNoLoss(t, l.a, files...)
	lines := 0
	for _, f := range files {
		lines += len(fileChain(t, f))
	}
	ok, failed := l.a.count()
	if lines != ok {
		t.Errorf("%d records in the files, %d writes acknowledged: a failed write left its record", lines, ok)
	}
	fsWantOK(t, fsVerify(t, VerifyOptions{}, files...), lines)
	t.Logf("%d writes acknowledged, %d refused", ok, failed)
}

// blockOnce makes the first call after armed block until released; it
// reports on stuck when it does.
type blockOnce struct {
	armed, used atomic.Bool
	stuck       chan struct{}
	release     chan struct{}
}

func newBlockOnce() *blockOnce {
	return &blockOnce{stuck: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockOnce) maybeBlock() {
	if b.armed.Load() && b.used.CompareAndSwap(false, true) {
		close(b.stuck)
		<-b.release
	}
}

// wantStalled checks a stalled sink from outside: Healthy reports the
// stall (within the bound and a generous margin of the stuck call's
// start), a Write fails fast with it, and Head and Warnings do not wait.
func wantStalled(t *testing.T, s *FileSink, since time.Time) {
	t.Helper()
	waitFor(t, "Healthy to report the stall", func() bool { return errors.Is(s.Healthy(), ErrStalled) })
	if d := time.Since(since); d > testWriteTimeout+2*time.Second {
		t.Errorf("the stall was reported %s after the call got stuck, want about %s", d, testWriteTimeout)
	}
	err := timed(t, "a Write while stalled", time.Second, func() error { return s.Write(fsRecord(fixtureEntity(t), 1)) })
	if !errors.Is(err, ErrStalled) {
		t.Errorf("write while stalled: %v, want ErrStalled", err)
	}
	timed(t, "Head while stalled", time.Second, func() error { s.Head(); return nil })
	timed(t, "Warnings while stalled", time.Second, func() error { s.Warnings(); return nil })
	err = timed(t, "Reopen while stalled", time.Second, s.Reopen)
	if !errors.Is(err, ErrStalled) {
		t.Errorf("reopen while stalled: %v, want ErrStalled", err)
	}
}

// TestFileSinkFaultWriteBlocks: a write(2) that does not return (a frozen
// file system), after its bytes reached the file. The watchdog declares
// the stall after WriteTimeout while the writer is still stuck; Healthy,
// Head, Warnings and other Writes answer at once; when the call returns,
// its Write fails (its record is cut) and the sink recovers.
func TestFileSinkFaultWriteBlocks(t *testing.T) {
	for _, mode := range []FsyncMode{FsyncAlways, FsyncNever} {
		t.Run(string(mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			s := fsOpen(t, FileSinkConfig{Path: path, Fsync: mode, WriteTimeout: testWriteTimeout})
			b := newBlockOnce()
			s.writeHook = func(f *os.File, p []byte) (int, error) {
				n, err := f.Write(p)
				b.maybeBlock()
				return n, err
			}
			stopHealth := watchHealthy(t, s)
			l := startLoad(t, s, 4)
			l.more(t, 20)
			b.armed.Store(true)
			<-b.stuck
			wantStalled(t, s, time.Now())
			l.moreErrors(t, 4)
			close(b.release)
			recoverAndCheck(t, s, l, stopHealth, path)
		})
	}
}

// TestFileSinkFaultFsyncBlocks: the group commit's fsync does not return.
// Every writer waiting on it gets an error after the bound, while it is
// still stuck, and its record is not acknowledged; when the fsync returns
// (late, successfully) it counts for nothing: recovery cuts the records it
// would have covered and the chain goes on.
func TestFileSinkFaultFsyncBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, WriteTimeout: testWriteTimeout})
	b := newBlockOnce()
	s.syncHook = func(f *os.File) error {
		b.maybeBlock()
		return f.Sync()
	}
	stopHealth := watchHealthy(t, s)
	l := startLoad(t, s, 4)
	l.more(t, 20)
	b.armed.Store(true)
	<-b.stuck
	wantStalled(t, s, time.Now())
	// Each writer waiting on the stuck fsync, and its retry, failed.
	l.moreErrors(t, 4)
	if d := time.Duration(l.slowest.Load()); d > 2*testWriteTimeout+2*time.Second {
		t.Errorf("a Write took %s while the fsync was stuck", d)
	}
	close(b.release)
	recoverAndCheck(t, s, l, stopHealth, path)
}

// TestFileSinkFaultReadOnly: the file system turns read-only mid-load (a
// remount after an error; as root, chmod would not stop the sink, so the
// write and the probe fail as such a file system fails them). Writes are
// refused, Healthy says so, and the sink recovers when it is writable.
func TestFileSinkFaultReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path})
	var ro atomic.Bool
	s.writeHook = func(f *os.File, p []byte) (int, error) {
		if ro.Load() {
			return 0, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EROFS}
		}
		return f.Write(p)
	}
	stopHealth := watchHealthy(t, s)
	l := startLoad(t, s, 4)
	l.more(t, 20)
	ro.Store(true)
	l.moreErrors(t, 8)
	if err := timed(t, "Healthy while read-only", time.Second, s.Healthy); !errors.Is(err, syscall.EROFS) {
		t.Errorf("healthy while read-only: %v", err)
	}
	ro.Store(false)
	fsWaitHealthy(t, s)
	l.more(t, 20)
	l.finish()
	if stopHealth() == 0 {
		t.Error("Healthy never reported the read-only file system")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantExactly(t, l, path)
}

// TestFileSinkCloseWhileStalled: Close does not hang on a stuck write; it
// reports the stall, and the file is closed when the write returns.
func TestFileSinkCloseWhileStalled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFileSink(FileSinkConfig{Path: path, WriteTimeout: testWriteTimeout})
	if err != nil {
		t.Fatal(err)
	}
	b := newBlockOnce()
	b.armed.Store(true)
	s.writeHook = func(f *os.File, p []byte) (int, error) {
		b.maybeBlock()
		return f.Write(p)
	}
	wrote := make(chan error)
	go func() { wrote <- s.Write(fsRecord(fixtureEntity(t), 1)) }()
	<-b.stuck
	err = timed(t, "Close with a write stuck", 2*testWriteTimeout+2*time.Second, s.Close)
	if !errors.Is(err, ErrStalled) {
		t.Errorf("close with a write stuck: %v, want ErrStalled", err)
	}
	if err := s.Write(fsRecord(fixtureEntity(t), 2)); !errors.Is(err, ErrSinkClosed) {
		t.Errorf("write after close: %v", err)
	}
	close(b.release)
	if err := <-wrote; err == nil {
		t.Error("the stuck write succeeded after the sink was declared stalled and closed")
	}
	waitFor(t, "the file to be closed", func() bool {
		s.syncMu.Lock()
		defer s.syncMu.Unlock()
		return s.stopFlush
	})
	if n := len(fileChain(t, path)); n != 0 {
		t.Errorf("%d records in the file, want 0", n)
	}
}
