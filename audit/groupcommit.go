package audit

import (
	"errors"
	"fmt"
	"time"
)

// errRolledBack is returned to writers whose record was written but never
// made durable before the sink failed: the chain was rolled back past it
// and recovery cuts it from the file, so it must be kept elsewhere.
var errRolledBack = errors.New("audit: file sink: the record was not on disk when the file failed; the chain was rolled back past it")

// syncThrough returns once the record seq (written in epoch) is on disk,
// or with an error if a failure rolled the chain back past it. One waiter
// at a time runs an fsync for everything written so far; the others wait
// for it and usually find themselves covered.
func (s *FileSink) syncThrough(seq, epoch int64) error {
	s.syncMu.Lock()
	for {
		if epoch != s.epoch {
			ok, cause := seq <= s.floors[epoch], s.floorErrs[epoch]
			s.syncMu.Unlock()
			if ok {
				return nil
			}
			return fmt.Errorf("%w: %w", errRolledBack, cause)
		}
		if s.durableSeq >= seq {
			s.syncMu.Unlock()
			return nil
		}
		if s.syncing || s.closing {
			s.syncCond.Wait()
			continue
		}
		s.syncing = true
		s.syncMu.Unlock()

		s.mu.Lock()
		f, tSeq, tSize, tHash, tEpoch := s.f, s.seq, s.size, s.hash, s.epoch
		s.mu.Unlock()
		var err error
		if f != nil {
			err = s.sync(f)
		}

		s.mu.Lock()
		if err != nil && s.f == f && !s.closed && s.err == nil {
			s.failLocked(fmt.Errorf("audit: file sink: fsync %s: %w", s.cfg.Path, err))
		}
		s.syncMu.Lock()
		s.syncing = false
		if f != nil && err == nil && tEpoch == s.epoch && tSeq > s.durableSeq {
			s.durableSeq, s.durableSize, s.durableHash = tSeq, tSize, tHash
		}
		s.syncCond.Broadcast()
		s.mu.Unlock()
		// Loop with syncMu held: covered, rolled back, or another round.
	}
}

// markDurableLocked records that everything written is on disk (after an
// fsync under mu, or a change of file) and wakes the writers waiting.
func (s *FileSink) markDurableLocked() {
	s.syncMu.Lock()
	s.durableSeq, s.durableSize, s.durableHash = s.seq, s.size, s.hash
	s.syncCond.Broadcast()
	s.syncMu.Unlock()
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
		if err := s.sync(f); err != nil {
			s.mu.Lock()
			if s.f == f && s.err == nil && !s.closed {
				s.failLocked(fmt.Errorf("audit: file sink: background fsync %s: %w", s.cfg.Path, err))
			}
			s.mu.Unlock()
		}
	}
}
