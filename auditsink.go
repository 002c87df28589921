package resetguard

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
)

// AuditConfig configures where records go beyond the Caddy logger, and
// which customer fields (none by default) they may carry.
type AuditConfig struct {
	// File is a durable, hash-chained audit file. While it cannot be
	// written, new resets are refused with 503 before they reach the
	// backend.
	File *AuditFile `json:"file,omitempty"`

	// CustomerFields opts in to customer fields of the returned entity,
	// by SuperOffice name (CustomerName, CustomerEmail, CustomerPhone,
	// CustomerHost, CustomerAlias, CustomerCompanyName), each "hash"
	// (HMAC-SHA256 under CustomerKey) or "clear".
	CustomerFields map[string]string `json:"customer_fields,omitempty"`

	// CustomerKey keys the customer field hashes; placeholders such as
	// {env.KEY} are replaced. Required for "hash".
	CustomerKey string `json:"customer_key,omitempty"`
}

// AuditFile configures the durable file sink.
type AuditFile struct {
	// Path of the live file; rotated files sit beside it.
	Path string `json:"path"`
	// Fsync is "always" (default: every record is on disk before the
	// response is released), "interval" or "never".
	Fsync string `json:"fsync,omitempty"`
	// FsyncInterval for the "interval" mode. Default 1s.
	FsyncInterval caddy.Duration `json:"fsync_interval,omitempty"`
	// MaxSize rotates the file before a record would take it past this
	// many bytes; 0 never rotates. Default 100 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// ChainKey, when set, keys the hash chain (HMAC-SHA256), so that only
	// a key holder can recompute it after an edit. Placeholders are
	// replaced.
	ChainKey string `json:"chain_key,omitempty"`
}

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
		if f.Path == "" {
			return errors.New("audit file: a path is required")
		}
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
		}
		v, _, err := fileSinks.LoadOrNew(f.Path, func() (caddy.Destructor, error) {
			s, err := audit.OpenFileSink(cfg)
			if err != nil {
				return nil, err
			}
			return pooledSink{s}, nil
		})
		if err != nil {
			return fmt.Errorf("audit file %s: %w", f.Path, err)
		}
		h.fileSink = v.(pooledSink).FileSink
		h.fileSinkKey = f.Path
	}
	return nil
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
			guardMetrics.auditErrors.Inc()
			h.logger.Error("durable audit write failed; record kept on the Caddy logger only",
				zap.String("request_id", r.RequestID), zap.Error(err))
		}
	}
	h.sink.Write(r)
	guardMetrics.auditRecords.Inc()
}
