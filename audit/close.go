package audit

import (
	"fmt"
	"time"
)

// Close fsyncs (unless the mode is never) and closes the live file. A
// record whose write failed is cut off first. Later calls return nil;
// Write and Healthy return ErrSinkClosed at once. Close waits at most
// twice WriteTimeout: while a disk call is stuck it returns an error
// wrapping ErrStalled, and the file is closed when the call returns.
func (s *FileSink) Close() error {
	if s.closedFlag.Swap(true) {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- s.closeWait() }()
	t := time.NewTimer(2 * s.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w: closing %s: a disk call has not returned; the file is closed when it does", ErrStalled, s.cfg.Path)
	}
}

// closeWait is Close without its bound.
func (s *FileSink) closeWait() error {
	s.mu.Lock()
	s.closed = true
	s.publishLocked()
	s.applyFaultLocked()
	if s.err != nil {
		s.cutBackLocked()
	}
	f := s.f
	s.f = nil
	var err error
	if f != nil && s.cfg.Fsync != FsyncNever {
		// Writers waiting for an fsync learn how the last one went.
		if err = s.sync(f); err != nil {
			s.failLocked(fmt.Errorf("audit: file sink: fsync %s at close: %w", s.cfg.Path, err))
		} else if !s.markDurableLocked() {
			err = s.applyFaultLocked()
		}
	}
	s.syncMu.Lock()
	s.stopFlush = true
	s.flushCond.Broadcast()
	s.doneCond.Broadcast()
	s.syncMu.Unlock()
	s.mu.Unlock()
	// The loops take the locks: stopped once they are released.
	if s.flushDone != nil {
		<-s.flushDone
	}
	if s.stop != nil {
		close(s.stop)
		<-s.done
	}
	s.stopWatchdog()
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("audit: file sink: closing %s: %w", s.cfg.Path, err)
	}
	return nil
}
