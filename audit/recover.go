package audit

import (
	"fmt"
	"os"
	"time"
)

// probeEvery bounds how often an unhealthy sink tries to recover.
const probeEvery = 100 * time.Millisecond

// readyLocked is nil when a write may go ahead, recovering if it is time.
func (s *FileSink) readyLocked() error {
	if s.closed {
		return ErrSinkClosed
	}
	if s.err != nil {
		if !s.lastProbe.IsZero() && s.now().Sub(s.lastProbe) < probeEvery {
			return s.err
		}
		return s.recoverLocked()
	}
	if !s.isLiveLocked() {
		err := fmt.Errorf("audit: file sink: %s was removed or replaced while open; records seq %d..%d that were written to it are not in the live file any more",
			s.cfg.Path, s.fileSeq+1, s.seq)
		if s.seq == s.fileSeq {
			err = fmt.Errorf("audit: file sink: %s was removed or replaced while open", s.cfg.Path)
		}
		s.warn(err.Error())
		return s.failLocked(err)
	}
	return nil
}

// isLiveLocked reports whether Path still names the open file.
func (s *FileSink) isLiveLocked() bool {
	if s.f == nil {
		return false
	}
	fi, err := os.Stat(s.cfg.Path)
	return err == nil && os.SameFile(fi, s.fi)
}

// failLocked makes the sink unhealthy with err and returns it. The first
// recovery attempt is not delayed (lastProbe is that of the last probe).
//
// In always mode the head goes back to the last record on disk: records
// written after it were never acknowledged, their writers get an error
// (and keep the record elsewhere), and recovery cuts them from the file.
func (s *FileSink) failLocked(err error) error {
	defer s.publishLocked()
	s.err, s.cause = err, err
	if s.cfg.Fsync != FsyncAlways {
		return err
	}
	s.syncMu.Lock()
	if s.seq != s.durableSeq {
		s.seq, s.size, s.hash = s.durableSeq, s.durableSize, s.durableHash
		s.floors = append(s.floors, s.durableSeq)
		s.floorErrs = append(s.floorErrs, err)
		s.epoch++
		s.syncCond.Broadcast()
	}
	s.syncMu.Unlock()
	return err
}

// cutBackLocked removes what a failed write left after the last complete
// record, if the open file is still the live one.
func (s *FileSink) cutBackLocked() error {
	if s.f == nil || !s.isLiveLocked() {
		return nil
	}
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
			return s.sync(s.f)
		}
	case fi.Size() < s.size:
		s.warn(fmt.Sprintf("%s: shrank from %d to %d bytes while open: records were cut from its end", s.cfg.Path, s.size, fi.Size()))
		s.size = fi.Size()
	}
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
		return s.err
	}
	if err := s.cutBackLocked(); err != nil {
		return fail(fmt.Errorf("cutting back a partial write: %w", err))
	}
	old := s.fi
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	f, fi, err := s.openLive()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	if old == nil || !os.SameFile(fi, old) {
		// A new (or someone else's) file at Path: repair a torn tail but
		// keep the chain we know.
		if size, _, err = s.repairTail(f, fi); err != nil {
			f.Close()
			return fail(err)
		}
		s.fileSeq = s.seq
	}
	if err := s.probe(); err != nil {
		f.Close()
		return fail(err)
	}
	s.f, s.fi, s.size, s.err, s.cause = f, fi, size, nil, nil
	s.markDurableLocked()
	return nil
}

// probe writes and fsyncs a scratch file beside the live file: a full
// disk or an unwritable directory fails it.
func (s *FileSink) probe() error {
	name := s.cfg.Path + ".probe"
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
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
