package audit

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// DefaultWriteTimeout is FileSinkConfig.WriteTimeout when it is zero.
const DefaultWriteTimeout = 2 * time.Second

// ErrStalled is wrapped by the errors of a sink whose disk call (write,
// fsync, rename, open, probe) did not return within WriteTimeout, and of a
// Write that could not get the writer lock within it. The sink refuses
// until the stuck call returns; then it recovers as after any failure.
var ErrStalled = errors.New("audit: file sink stalled: a disk call did not return within the write timeout")

// The sink's disk calls run in one of two lanes, each timed by the
// watchdog: the writer lane is every section that holds the writer lock
// (append, rotation, recovery, close), the sync lane the fsyncs made
// outside it (group commit, interval mode).
type laneID int

const (
	laneWriter laneID = iota
	laneSync
	numLanes
)

// stallBit marks a lane's start once the watchdog declared it stalled; it
// is far above any start value (2^62 ns is 146 years).
const stallBit = int64(1) << 62

// Labels of what a lane is doing, for the stall error. Pointers to these
// are stored, so that labelling a call allocates nothing.
var (
	opLocked   = "a call under the writer lock of"
	opWrite    = "write to"
	opFsync    = "fsync of"
	opRename   = "rename of"
	opOpen     = "open of"
	opTruncate = "truncate of"
	opStat     = "stat of"
	opProbe    = "probe beside"
)

// lane times one section at a time. Its timer is armed by the first
// section after an idle period and re-armed by fire for the section then
// running, so that a section costs two atomic stores and a clock read,
// not a timer reset.
type lane struct {
	start atomic.Int64 // clock() when the section began, | stallBit once stalled; 0: idle
	op    atomic.Pointer[string]
	armed atomic.Bool
	timer *time.Timer
}

// sinkHealth is the published state Healthy and Write read without a
// lock. It is replaced, never changed.
type sinkHealth struct {
	err     error // nil: healthy
	stalled bool  // err is a stall: a disk call has not returned yet
}

var healthy = &sinkHealth{}

// startWatchdog creates the lanes' timers (stopped) and publishes the
// sink as healthy. The timers' callbacks are the watchdog: they run on
// their own goroutines, so a stall is declared while the stuck goroutine
// is still in the kernel.
func (s *FileSink) startWatchdog() {
	s.base = time.Now()
	for i := range s.lanes {
		id := laneID(i)
		s.lanes[i].timer = time.AfterFunc(time.Hour, func() { s.fire(id) })
		s.lanes[i].timer.Stop()
	}
	s.health.Store(healthy)
}

func (s *FileSink) stopWatchdog() {
	for i := range s.lanes {
		s.lanes[i].timer.Stop()
	}
}

// clock is the monotonic time since the sink opened, never 0.
func (s *FileSink) clock() int64 {
	return int64(time.Since(s.base)) + 1
}

// beginLane starts timing a section.
func (s *FileSink) beginLane(id laneID, op *string) {
	l := &s.lanes[id]
	l.op.Store(op)
	l.start.Store(s.clock())
	if l.armed.CompareAndSwap(false, true) {
		l.timer.Reset(s.cfg.WriteTimeout)
	}
}

// labelLane says what the running section is doing now.
func (s *FileSink) labelLane(id laneID, op *string) {
	s.lanes[id].op.Store(op)
}

// endLane stops timing a section and reports whether it was declared
// stalled meanwhile; if so the stall is lifted (its fault stays, for the
// next holder of the writer lock to apply, which starts a recovery).
func (s *FileSink) endLane(id laneID) (stalled bool) {
	if s.lanes[id].start.Swap(0)&stallBit == 0 {
		return false
	}
	s.syncMu.Lock()
	s.stallErr[id] = nil
	s.publishSyncLocked()
	s.syncMu.Unlock()
	return true
}

// fire is the watchdog: a lane's timer went off. A section running for
// WriteTimeout is declared stalled; one that started later re-arms the
// timer for what is left of its time.
func (s *FileSink) fire(id laneID) {
	l := &s.lanes[id]
	l.armed.Store(false) // before reading start: see beginLane
	st := l.start.Load()
	if st == 0 || st&stallBit != 0 {
		return
	}
	timeout := int64(s.cfg.WriteTimeout)
	if el := s.clock() - st; el < timeout {
		if l.armed.CompareAndSwap(false, true) {
			l.timer.Reset(time.Duration(timeout - el))
		}
		return
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	// Under syncMu, so that the declaration is complete before endLane
	// of this section can lift it.
	if !l.start.CompareAndSwap(st, st|stallBit) {
		return
	}
	err := fmt.Errorf("%w: %s %s has not returned within %s; refusing until it does",
		ErrStalled, *l.op.Load(), s.cfg.Path, s.cfg.WriteTimeout)
	s.stallErr[id] = err
	s.declareFaultSyncLocked(err)
	if s.stallWake != nil {
		close(s.stallWake)
		s.stallWake = nil
	}
	s.publishSyncLocked()
}

// publishSyncLocked publishes the sink's health for the lock-free readers:
// a stall first, then a failure not yet applied under the writer lock,
// then the writer's own state.
func (s *FileSink) publishSyncLocked() {
	h := healthy
	switch {
	case s.stallErr[laneWriter] != nil:
		h = &sinkHealth{err: s.stallErr[laneWriter], stalled: true}
	case s.stallErr[laneSync] != nil:
		h = &sinkHealth{err: s.stallErr[laneSync], stalled: true}
	case s.fault != nil:
		h = &sinkHealth{err: s.fault}
	case s.muErr != nil:
		h = &sinkHealth{err: s.muErr}
	}
	s.health.Store(h)
	if h.err != nil {
		s.publishError(h.err)
	}
}

// publishLocked publishes s.err and when the next probe is due; called
// under the writer lock whenever they change.
func (s *FileSink) publishLocked() {
	next := int64(0)
	if !s.lastProbe.IsZero() {
		next = s.lastProbe.Add(probeEvery).UnixNano()
	}
	s.probeAt.Store(next)
	s.publishStatsLocked()
	s.syncMu.Lock()
	s.muErr = s.err
	s.publishSyncLocked()
	s.syncMu.Unlock()
}

// probeDue reports whether a recovery attempt may run now.
func (s *FileSink) probeDue() bool {
	return s.now().UnixNano() >= s.probeAt.Load()
}

// writerLock is the sink's writer lock: a one-slot channel, so that a
// writer can wait for it with a bound, and give up at once when the
// watchdog declares the holder stalled. Holding it is one section of the
// writer lane. It implements sync.Locker.
type writerLock struct {
	ch chan struct{}
	s  *FileSink
}

// Lock waits for the lock without a bound; for background work only.
func (l *writerLock) Lock() {
	l.ch <- struct{}{}
	l.s.beginLane(laneWriter, &opLocked)
}

// TryLock takes the lock if it is free.
func (l *writerLock) TryLock() bool {
	select {
	case l.ch <- struct{}{}:
		l.s.beginLane(laneWriter, &opLocked)
		return true
	default:
		return false
	}
}

// Unlock ends the section; see endLane.
func (l *writerLock) Unlock() {
	l.s.endLane(laneWriter)
	<-l.ch
}

// lockWithin takes the lock, waiting at most d, and less when the holder
// is declared stalled meanwhile.
func (l *writerLock) lockWithin(d time.Duration) error {
	if l.TryLock() {
		return nil
	}
	wake, err := l.s.stallWakeChan()
	if err != nil {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l.ch <- struct{}{}:
		l.s.beginLane(laneWriter, &opLocked)
		return nil
	case <-wake:
		if err := l.s.health.Load().err; err != nil {
			return err
		}
		return fmt.Errorf("%w: the writer of %s was declared stalled", ErrStalled, l.s.cfg.Path)
	case <-t.C:
		return fmt.Errorf("%w: the writer lock of %s was not free within %s", ErrStalled, l.s.cfg.Path, d)
	}
}

// stallWakeChan returns a channel closed at the next stall, or the error
// of the stall in force.
func (s *FileSink) stallWakeChan() (<-chan struct{}, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	for _, err := range s.stallErr {
		if err != nil {
			return nil, err
		}
	}
	if s.stallWake == nil {
		s.stallWake = make(chan struct{})
	}
	return s.stallWake, nil
}
