package audit

import (
	"fmt"
	"os"
	"time"
)

// probeEvery bounds how often an unhealthy sink tries to recover.
const probeEvery = 100 * time.Millisecond

// readyLocked is nil when a write may go ahead, recovering if it is time.
// It runs first in every section of the writer lock that writes.
func (s *FileSink) readyLocked() error {
	if s.closed {
		return ErrSinkClosed
	}
	s.applyFaultLocked()
	if h := s.health.Load(); h.stalled {
		// No disk call while another one is stuck (the sync lane).
		return h.err
	}
	if s.err != nil {
		if !s.lastProbe.IsZero() && s.now().Sub(s.lastProbe) < probeEvery {
			return s.err
		}
		return s.recoverLocked()
	}
	s.labelLane(laneWriter, &opStat)
	if err := s.id.check(s.cfg.Path, s.dir); err != nil {
		return s.movedLocked(err)
	}
	return nil
}

// failLocked makes the sink unhealthy with err and returns it. The first
// recovery attempt is not delayed (lastProbe is that of the last probe).
//
// In always mode the head goes back to the last record on disk: records
// written after it were never acknowledged, their writers get an error
// (and keep the record elsewhere), and recovery cuts them from the file
// before their seqs are used again (see settleOldFileLocked).
func (s *FileSink) failLocked(err error) error {
	defer s.publishLocked()
	s.err, s.cause = err, err
	s.syncMu.Lock()
	s.declareFaultSyncLocked(err)
	s.fault = nil // applied here
	s.faultPending.Store(false)
	if s.cfg.Fsync == FsyncAlways {
		s.seq, s.size, s.hash = s.durableSeq, s.durableSize, s.durableHash
		s.tip = fileHead{f: s.f, seq: s.seq, size: s.size, hash: s.hash}
	}
	s.syncMu.Unlock()
	s.publishLocked()
	return err
}

// cutBackLocked removes what failed writes left in the open file after the
// last good record. It works through the descriptor, so it reaches the
// file even after it was renamed, removed or unmounted away.
func (s *FileSink) cutBackLocked() error {
	if s.f == nil {
		return nil
	}
	s.labelLane(laneWriter, &opTruncate)
	fi, err := s.f.Stat()
	if err != nil {
		return err
	}
	switch {
	case fi.Size() > s.size:
		if err := s.f.Truncate(s.size); err != nil {
			return err
		}
		if s.cfg.Fsync != FsyncNever {
			if err := s.sync(s.f); err != nil {
				return err
			}
		}
	case fi.Size() < s.size:
		s.warn(fmt.Sprintf("%s: shrank from %d to %d bytes while open: records were cut from its end", s.cfg.Path, s.size, fi.Size()))
		s.size = fi.Size()
	}
	s.written = headLink{s.seq, s.hash}
	return nil
}

// recoverLocked tries to make the sink writable again. On success the
// chain continues from the in-memory head: records a removed file held are
// not re-read, so that the gap stays visible to verification.
func (s *FileSink) recoverLocked() error {
	defer s.publishLocked()
	s.lastProbe = s.now()
	s.probes.Add(1)
	fail := func(err error) error {
		s.err = fmt.Errorf("%w (recovery failed: %w)", s.cause, err)
		s.publishLocked()
		return s.err
	}
	if err := s.settleOldFileLocked(); err != nil {
		return fail(err)
	}
	f, fi, size, err := s.reopenLocked()
	if err != nil {
		return fail(err)
	}
	if err := s.probe(); err != nil {
		f.Close()
		return fail(err)
	}
	if s.faultPending.Load() {
		// This section stalled: its success proves nothing.
		f.Close()
		return fail(s.applyFaultLocked())
	}
	defer s.switchingFile()()
	s.f, s.fi, s.size, s.err, s.cause = f, fi, size, nil, nil
	s.id.file = fileIDOf(fi)
	s.written = headLink{s.seq, s.hash}
	s.adoptDir = false
	s.pubID.Store(&identity{file: s.id.file, dir: s.id.dir})
	s.markDurableLocked()
	s.publishLocked()
	return nil
}

// probe writes and fsyncs a scratch file beside the live file: a full
// disk or an unwritable directory fails it.
func (s *FileSink) probe() error {
	s.labelLane(laneWriter, &opProbe)
	name := s.cfg.Path + ".probe"
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|openNonblock, 0o600)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer os.Remove(name)
	_, err = s.write(f, make([]byte, 4096))
	if err == nil {
		err = s.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	return nil
}
