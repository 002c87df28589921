package audit

import "sync/atomic"

// SinkStats is a FileSink's state as last published, for the status
// route, metrics and log lines.
type SinkStats struct {
	// Seq is the chain's head: the last record written to the file.
	Seq int64
	// Healthy is false while the sink is failed (until a recovery
	// succeeds) and after Close.
	Healthy bool
	// LastError is the most recent failure, kept after recovery so that
	// the status route can say what happened; empty if none since open.
	LastError string
	// TornCuts counts torn last lines cut since open (at open, or when
	// recovery found a new file at the path ending in one); TornBytes is
	// their total size and LastTornFile the path the last one was saved
	// to.
	TornCuts     int64
	TornBytes    int64
	LastTornFile string
	// RecoveredIntents counts the gateway_restarted outcomes open wrote
	// for intents that a stop left without an outcome.
	RecoveredIntents int64
}

// sinkStats is published with atomics, never under FileSink.mu: a status
// route or metric must not wait for a writer that is stuck in write(2) or
// fsync while holding the lock.
type sinkStats struct {
	seq       atomic.Int64
	unhealthy atomic.Bool
	lastErr   atomic.Pointer[string]
	tornCuts  atomic.Int64
	tornBytes atomic.Int64
	lastTorn  atomic.Pointer[string]
	recovered atomic.Int64
}

// Stats returns the sink's published state. It takes no lock, so it
// answers at once even while a write or an fsync hangs; its fields may be
// a moment apart from each other.
func (s *FileSink) Stats() SinkStats {
	st := &s.stats
	out := SinkStats{
		Seq:              st.seq.Load(),
		Healthy:          !st.unhealthy.Load() && (s.health.Load() == nil || s.health.Load().err == nil),
		TornCuts:         st.tornCuts.Load(),
		TornBytes:        st.tornBytes.Load(),
		RecoveredIntents: st.recovered.Load(),
	}
	if p := st.lastErr.Load(); p != nil {
		out.LastError = *p
	}
	if p := st.lastTorn.Load(); p != nil {
		out.LastTornFile = *p
	}
	return out
}

// publishStatsLocked copies the state kept under s.mu to the atomics
// Stats reads. publishLocked (watchdog.go) calls it wherever that state
// changes (a record appended, a failure, a recovery, Close); a failure
// learnt without s.mu (a stalled disk call) reaches Stats through the
// published health instead (publishSyncLocked).
func (s *FileSink) publishStatsLocked() {
	st := &s.stats
	st.seq.Store(s.seq)
	st.unhealthy.Store(s.err != nil || s.closed)
	if s.err != nil {
		s.publishError(s.err)
	}
}

// publishError keeps err as Stats' LastError.
func (s *FileSink) publishError(err error) {
	msg := err.Error()
	if p := s.stats.lastErr.Load(); p == nil || *p != msg {
		s.stats.lastErr.Store(&msg)
	}
}
