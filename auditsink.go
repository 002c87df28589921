package resetguard

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
)

// fileSinks shares one open sink per path across config reloads: two
// sinks appending to one file would fork its hash chain.
var fileSinks = caddy.NewUsagePool()

type pooledSink struct{ *audit.FileSink }

func (p pooledSink) Destruct() error { return p.Close() }

func (a *AuditConfig) provision(h *Handler) error {
	if a == nil {
		return nil
	}
	repl := caddy.NewReplacer()
	if len(a.CustomerFields) > 0 {
		r, err := audit.NewCustomerRedactor(a.CustomerFields, []byte(repl.ReplaceKnown(a.CustomerKey, "")))
		if err != nil {
			return err
		}
		h.customer = r
	}
	if f := a.File; f != nil {
		maxSize := f.MaxSize
		if maxSize == 0 {
			maxSize = 100 << 20
		}
		cfg := audit.FileSinkConfig{
			Path:          f.Path,
			Fsync:         audit.FsyncMode(f.Fsync),
			FsyncInterval: time.Duration(f.FsyncInterval),
			MaxSize:       maxSize,
			ChainKey:      []byte(repl.ReplaceKnown(f.ChainKey, "")),
			WriteTimeout:  time.Duration(f.WriteTimeout),
		}
		v, loaded, err := fileSinks.LoadOrNew(f.Path, func() (caddy.Destructor, error) {
			s, err := audit.OpenFileSink(cfg)
			if err != nil {
				return nil, err
			}
			h.reportRepairs(f.Path, s)
			return pooledSink{s}, nil
		})
		if err != nil {
			return fmt.Errorf("audit file %s: %w", f.Path, err)
		}
		if loaded {
			// A config reload is the operator's decision: a sink that
			// stopped because its directory was replaced or unmounted
			// adopts the directory now at the path. On a healthy sink it
			// does nothing; its failure is logged, not fatal, since the
			// sink refuses resets while unhealthy anyway.
			if err := v.(pooledSink).Reopen(); err != nil {
				h.logger.Error("durable audit file: reopening on reload failed; resets stay refused", zap.String("path", f.Path), zap.Error(err))
			}
		}
		h.fileSink = v.(pooledSink).FileSink
		h.fileSinkKey = f.Path
	}
	return nil
}

// reportRepairs tells the operator what opening the file repaired, once
// per open (not per config reload): a torn final line (a crash mid-write)
// cut, saved beside the file and noted in the chain, and intents a crash
// left open, closed as gateway_restarted. The records the open appended go
// to the Caddy logger too, so that a pipeline reading only the logger sees
// how each interrupted request ended.
func (h *Handler) reportRepairs(path string, s *audit.FileSink) {
	for _, r := range s.OpenRecords() {
		h.sink.Write(r)
	}
	st := s.Stats()
	if st.TornCuts > 0 {
		m := h.metrics()
		m.auditTornLines.Add(float64(st.TornCuts))
		m.auditTornBytes.Add(float64(st.TornBytes))
		h.logger.Warn("durable audit file: cut a torn final line left by a crash; it is saved beside the file and noted in the chain",
			zap.String("path", path), zap.Int64("torn_lines", st.TornCuts), zap.Int64("bytes", st.TornBytes),
			zap.String("saved_as", st.LastTornFile))
	}
	if st.RecoveredIntents > 0 {
		h.logger.Warn("durable audit file: resets that were in flight when the gateway stopped are recorded as outcome unknown (gateway_restarted)",
			zap.String("path", path), zap.Int64("intents", st.RecoveredIntents))
	}
}

// writeRecord writes r to the durable file (when configured) and then to
// the Caddy logger. A file that fails is retried once; if it still fails
// the logger copy is marked, so that the record is not lost and the gap
// in the durable trail is visible.
func (h *Handler) writeRecord(r *audit.Record) {
	if h.fileSink != nil {
		err := h.fileSink.Write(r)
		if err != nil {
			err = h.fileSink.Write(r)
		}
		if err != nil {
			r.Fallback = true
			h.metrics().auditErrors.Inc()
			h.logger.Error("durable audit write failed; record kept on the Caddy logger only",
				zap.String("request_id", r.RequestID), zap.Error(err))
		}
	}
	h.sink.Write(r)
	h.metrics().auditRecords.Inc()
}
