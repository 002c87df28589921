package audit

import (
	"bufio"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acked is what the Writes that returned nil were told: seq to hash.
// The fault tests check that every one of them is in the files, chained.
type acked struct {
	mu   sync.Mutex
	hash map[int64]string
	errs int
}

func newAcked() *acked { return &acked{hash: map[int64]string{}} }

// note records a Write's outcome; it fails the test for a nil error
// without a chain, a chain with an error, and a seq acknowledged twice.
func (a *acked) note(t *testing.T, r *Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err != nil && r.Chain != nil:
		t.Errorf("write failed (%v) but set the chain %+v", err, r.Chain)
	case err != nil:
		a.errs++
	case r.Chain == nil:
		t.Error("write succeeded without a chain")
	default:
		if h, dup := a.hash[r.Chain.Seq]; dup {
			t.Errorf("seq %d acknowledged twice (%s, then %s)", r.Chain.Seq, h, r.Chain.Hash)
		}
		a.hash[r.Chain.Seq] = r.Chain.Hash
	}
}

func (a *acked) count() (ok, failed int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.hash), a.errs
}

// fileChain reads the seq and hash of every line of path.
func fileChain(t *testing.T, path string) map[int64]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int64]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, maxLine)
	for n := 1; sc.Scan(); n++ {
		p, bad := parseLine(nil, sc.Bytes())
		if p == nil {
			t.Fatalf("%s:%d: %s", path, n, bad)
		}
		if _, dup := out[p.Seq]; dup {
			t.Fatalf("%s:%d: seq %d twice in one file", path, n, p.Seq)
		}
		out[p.Seq] = p.Hash
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantNoForkNoLoss checks the files of one chain: no seq names two
// different records (a fork), and every acknowledged record is there.
func wantNoForkNoLoss(t *testing.T, a *acked, files ...string) {
	t.Helper()
	all := map[int64]string{}
	for _, f := range files {
		for seq, h := range fileChain(t, f) {
			if prev, ok := all[seq]; ok && prev != h {
				t.Errorf("the chain forked: seq %d is %s in one file and %s in %s", seq, prev, h, f)
			}
			all[seq] = h
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for seq, h := range a.hash {
		if got, ok := all[seq]; !ok {
			t.Errorf("acknowledged record seq %d is in no file", seq)
		} else if got != h {
			t.Errorf("acknowledged record seq %d is %s in the file, not %s", seq, got, h)
		}
	}
}

// watchHealthy calls Healthy over and over until the returned func is
// called, which fails the test if one call took more than a second (the
// status route must answer whatever the disk does) and returns how many
// calls reported an error.
func watchHealthy(t *testing.T, s *FileSink) (stop func() (unhealthy int)) {
	t.Helper()
	done := make(chan struct{})
	var longest, bad atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			start := time.Now()
			err := s.Healthy()
			if d := int64(time.Since(start)); d > longest.Load() {
				longest.Store(d)
			}
			if err != nil {
				bad.Add(1)
			}
		}
	})
	return func() int {
		t.Helper()
		close(done)
		wg.Wait()
		if d := time.Duration(longest.Load()); d > time.Second {
			t.Errorf("a Healthy call took %s, want under 1s", d)
		}
		return int(bad.Load())
	}
}

// timed runs f and fails the test if it took longer than limit.
func timed(t *testing.T, what string, limit time.Duration, f func() error) error {
	t.Helper()
	start := time.Now()
	err := f()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %s, want under %s (err %v)", what, d, limit, err)
	}
	return err
}

// recoverAndCheck ends a fault test once the fault is lifted: the sink
// becomes healthy again and takes more load, and after Close the files
// hold exactly the acknowledged records, chained.
func recoverAndCheck(t *testing.T, s *FileSink, l *load, stopHealth func() int, files ...string) {
	t.Helper()
	fsWaitHealthy(t, s)
	l.more(t, 20)
	l.finish()
	stopHealth()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantExactly(t, l, files...)
}
