package audit

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// errRolledBack is returned to writers whose record was written but never
// made durable before the sink failed: the chain was rolled back past it
// and recovery cuts it from the file, so it must be kept elsewhere.
var errRolledBack = errors.New("audit: file sink: the record was not on disk when the file failed; the chain was rolled back past it")

// waitDurable returns once the record seq (written in epoch) is on disk,
// or with an error if a failure rolled the chain back past it: a failed
// fsync, or a stall the watchdog declared, which bumps the epoch at once,
// so a writer whose fsync is stuck gets its error after WriteTimeout.
func (s *FileSink) waitDurable(seq, epoch int64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for {
		if epoch != s.epoch {
			if seq <= s.floors[epoch] {
				return nil
			}
			return fmt.Errorf("%w: %w", errRolledBack, s.floorErrs[epoch])
		}
		if s.durableSeq >= seq {
			return nil
		}
		s.doneCond.Wait()
	}
}

// flushLoop is the always mode's flusher: while lines are written past
// the durable head and no failure is pending, it fsyncs the file, and one
// fsync covers every line written before it started.
func (s *FileSink) flushLoop() {
	defer close(s.flushDone)
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for {
		for !s.stopFlush && (s.tip.f == nil || s.tip.seq <= s.durableSeq || s.fault != nil) {
			s.flushCond.Wait()
		}
		if s.stopFlush {
			return
		}
		t, epoch := s.tip, s.epoch
		s.syncMu.Unlock()
		s.beginLane(laneSync, &opFsync)
		err := s.fsync(t.f)
		stalled := s.endLane(laneSync)
		s.syncMu.Lock()
		switch {
		case stalled:
			// The stall declared the failure; nothing of this fsync counts,
			// even if it succeeded late.
		case t.f != s.tip.f, errors.Is(err, os.ErrClosed):
			// Rotation or recovery changed the file, and made durable by
			// itself what this fsync was for (rotation and a moved file) or
			// rolled it back (a failure); the file may be closed by now.
		case err != nil:
			if epoch == s.epoch && s.fault == nil {
				s.declareFaultSyncLocked(fmt.Errorf("audit: file sink: fsync %s: %w", s.cfg.Path, err))
				s.publishSyncLocked()
			}
		case epoch == s.epoch && t.seq > s.durableSeq:
			s.durableSeq, s.durableSize, s.durableHash = t.seq, t.size, t.hash
		}
		s.doneCond.Broadcast()
	}
}

// declareFaultSyncLocked records a failure found outside mu: in always
// mode the writers whose records are past the durable head get it at once
// (epoch bump), and the next holder of mu applies it (applyFaultLocked):
// the head goes back to the durable record and recovery cuts the rest.
func (s *FileSink) declareFaultSyncLocked(err error) {
	if s.fault == nil {
		s.fault = err
		s.faultPending.Store(true)
	}
	if s.cfg.Fsync == FsyncAlways && s.tip.seq != s.durableSeq {
		s.floors = append(s.floors, s.durableSeq)
		s.floorErrs = append(s.floorErrs, err)
		s.epoch++
		// The rolled-back tip: nothing past durable is flushed any more.
		s.tip = fileHead{f: s.tip.f, seq: s.durableSeq, size: s.durableSize, hash: s.durableHash}
		s.doneCond.Broadcast()
	}
}

// applyFaultLocked applies a failure declared outside mu, if any, and
// returns it.
func (s *FileSink) applyFaultLocked() error {
	if !s.faultPending.Load() {
		return nil
	}
	s.syncMu.Lock()
	err := s.fault
	s.syncMu.Unlock()
	if err == nil {
		return nil
	}
	return s.failLocked(err)
}

// markDurableLocked records that everything written is on disk (after an
// fsync under mu, or a change of file) and wakes the writers waiting. It
// does nothing and returns false while a failure is pending: an fsync
// that succeeds after a failed one does not prove the lines before it.
func (s *FileSink) markDurableLocked() bool {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.fault != nil {
		return false
	}
	s.setDurableSyncLocked()
	return true
}

// setDurableSyncLocked makes the head (mu's fields, held by the caller)
// the durable head and the tip.
func (s *FileSink) setDurableSyncLocked() {
	s.durableSeq, s.durableSize, s.durableHash = s.seq, s.size, s.hash
	s.tip = fileHead{f: s.f, seq: s.seq, size: s.size, hash: s.hash}
	s.doneCond.Broadcast()
}

// syncLoop is the interval mode's background fsync.
func (s *FileSink) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FsyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		f := s.f
		if !s.dirty || f == nil || s.err != nil {
			s.mu.Unlock()
			continue
		}
		s.dirty = false
		s.mu.Unlock()
		// Outside the lock: writers go on while the disk catches up.
		if err := s.syncOutside(f); err != nil {
			s.mu.Lock()
			if s.f == f && s.err == nil && !s.closed {
				s.failLocked(fmt.Errorf("audit: file sink: background fsync %s: %w", s.cfg.Path, err))
			}
			s.mu.Unlock()
		}
	}
}

// syncOutside is an fsync in the sync lane. A stalled one returns nil:
// the stall has declared the failure already.
func (s *FileSink) syncOutside(f *os.File) error {
	s.beginLane(laneSync, &opFsync)
	err := s.fsync(f)
	if s.endLane(laneSync) {
		return nil
	}
	return err
}
