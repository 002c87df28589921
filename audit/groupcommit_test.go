package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestFileSinkGroupCommit: in always mode concurrent writers share fsyncs
// (a slow disk does not queue them one fsync each), every Write returns
// only once its record is covered by an fsync, and the chain verifies.
func TestFileSinkGroupCommit(t *testing.T) {
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, Fsync: FsyncAlways})
	// Records covered by an fsync: the complete lines in the file when
	// it starts (the fsync covers every byte written before it).
	var synced atomic.Int64
	s.syncHook = func(f *os.File) error {
		time.Sleep(2 * time.Millisecond) // a slow disk, so that writers pile up
		data, err := os.ReadFile(f.Name())
		if err != nil {
			return err
		}
		lines := int64(bytes.Count(data, []byte{'\n'}))
		if err := f.Sync(); err != nil {
			return err
		}
		synced.Store(max(synced.Load(), lines))
		return nil
	}
	const writers, each = 16, 20
	var uncovered atomic.Int64
	writeConcurrently(s, cs, writers, each, func(_ int, r *Record, err error) bool {
		if err != nil {
			t.Error(err)
			return false
		}
		if r.Chain.Seq > synced.Load() {
			uncovered.Add(1)
		}
		return true
	})
	if n := uncovered.Load(); n > 0 {
		t.Errorf("%d writes returned before an fsync covered them", n)
	}
	syncs := s.syncs.Load()
	if syncs >= writers*each/2 {
		t.Errorf("%d fsyncs for %d records from %d writers: they were not shared", syncs, writers*each, writers)
	}
	t.Logf("%d records, %d fsyncs", writers*each, syncs)
	fsWantOK(t, fsVerify(t, VerifyOptions{}, path), writers*each)
}

// TestFileSinkGroupCommitFailure: an fsync fails while writers wait on
// it. Every writer either succeeded, and its record is in the file, or
// got the error, and its record is not (recovery cuts it back); the chain
// then goes on and verifies.
func TestFileSinkGroupCommitFailure(t *testing.T) {
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, Fsync: FsyncAlways})
	var calls atomic.Int64
	s.syncHook = func(f *os.File) error {
		time.Sleep(time.Millisecond)
		if calls.Add(1) == 5 {
			return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
		}
		return f.Sync()
	}
	const writers, each = 8, 10
	var ok, failed atomic.Int64
	writeConcurrently(s, cs, writers, each, func(_ int, r *Record, err error) bool {
		switch {
		case err == nil && r.Chain != nil:
			ok.Add(1)
		case err != nil && r.Chain == nil:
			if !errors.Is(err, syscall.EIO) && !errors.Is(err, errRolledBack) {
				t.Errorf("write failed with %v, want the fsync's EIO", err)
			}
			failed.Add(1)
			time.Sleep(probeEvery) // let the sink recover
		default:
			t.Errorf("write: err %v with chain %+v", err, r.Chain)
		}
		return true
	})
	if failed.Load() == 0 {
		t.Fatal("the failing fsync failed no write")
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("not recovered: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d written, %d refused by the failed fsync", ok.Load(), failed.Load())
	fsWantOK(t, fsVerify(t, VerifyOptions{}, path), int(ok.Load()))
}

// BenchmarkFileSinkWriteParallel: concurrent writers in always mode, where
// group commit shares each fsync among them.
func BenchmarkFileSinkWriteParallel(b *testing.B) {
	cs := fixtureEntity(b)
	s, err := OpenFileSink(FileSinkConfig{Path: filepath.Join(b.TempDir(), "audit.log"), MaxSize: 32 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		r := fsRecord(cs, 1)
		for pb.Next() {
			if err := s.Write(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
