package resetguard

// Decision logs (issue 15): every evaluated decision is handed to OPA's
// own decision-log plugin, which batches, gzips and uploads events in
// OPA's decision-log format to a log service. Off unless
// policy.decision_logs is set.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/policy"
)

// DecisionLogConfig configures OPA-format decision logs.
type DecisionLogConfig struct {
	// URL is the log service's base URL; OPA's plugin POSTs gzip'd JSON
	// batches to {url}/logs. Placeholders such as {env.X} are replaced.
	URL string `json:"url"`
	// Headers are sent with every upload (placeholders replaced), e.g.
	// an Authorization header for the log service.
	Headers map[string]string `json:"headers,omitempty"`
	// MinDelay and MaxDelay bound the upload interval (whole seconds,
	// rounded up). Default 5s and 10s.
	MinDelay caddy.Duration `json:"min_delay,omitempty"`
	MaxDelay caddy.Duration `json:"max_delay,omitempty"`
	// BufferSizeLimit caps the bytes of events held while the service
	// is slow or down; past it the oldest events are dropped. Default
	// 16MiB.
	BufferSizeLimit int64 `json:"buffer_size_limit,omitempty"`
}

const (
	dlogService        = "resetguard_decision_logs"
	dlogDefaultBuffer  = 16 << 20
	dlogQueue          = 1024
	dlogStopTimeout    = 2 * time.Second
	dlogDefaultMinSecs = 5
	dlogDefaultMaxSecs = 10
)

func (c *DecisionLogConfig) validate() error {
	if c == nil {
		return nil
	}
	var order, size error
	if c.MinDelay > 0 && c.MaxDelay > 0 && c.MaxDelay < c.MinDelay {
		order = &fieldError{path: "policy.decision_logs.max_delay", value: shortDuration(time.Duration(c.MaxDelay)),
			want: "want at least min_delay (" + shortDuration(time.Duration(c.MinDelay)) + ")"}
	}
	if c.BufferSizeLimit < 0 {
		size = &fieldError{path: "policy.decision_logs.buffer_size_limit", value: fmt.Sprint(c.BufferSizeLimit),
			want: "want a positive size"}
	}
	return errors.Join(
		httpURL("policy.decision_logs.url", c.URL),
		optionalDuration("policy.decision_logs.min_delay", c.MinDelay, time.Second, 0),
		optionalDuration("policy.decision_logs.max_delay", c.MaxDelay, time.Second, 0),
		order, size,
	)
}

func ceilSeconds(d caddy.Duration, def int64) int64 {
	if d <= 0 {
		return def
	}
	return int64(math.Ceil(time.Duration(d).Seconds()))
}

// opaConfig is the OPA configuration that the decision_logs block maps
// to: one service and the decision_logs plugin reporting to it.
func (c *DecisionLogConfig) opaConfig() ([]byte, error) {
	repl := caddy.NewReplacer()
	headers := make(map[string]string, len(c.Headers))
	for k, v := range c.Headers {
		headers[k] = repl.ReplaceKnown(v, "")
	}
	minS := ceilSeconds(c.MinDelay, dlogDefaultMinSecs)
	maxS := ceilSeconds(c.MaxDelay, max(dlogDefaultMaxSecs, minS))
	limit := c.BufferSizeLimit
	if limit == 0 {
		limit = dlogDefaultBuffer
	}
	return json.Marshal(map[string]any{
		"labels": map[string]string{"app": "resetguard"},
		"services": map[string]any{
			dlogService: map[string]any{"url": strings.TrimRight(repl.ReplaceKnown(c.URL, ""), "/"), "headers": headers},
		},
		"decision_logs": map[string]any{
			"service": dlogService,
			"reporting": map[string]any{
				"min_delay_seconds":       minS,
				"max_delay_seconds":       maxS,
				"buffer_size_limit_bytes": limit,
			},
		},
	})
}

// decisionLogger owns one OPA plugin manager with the decision-log
// plugin. Events go through a bounded queue to one goroutine, so the
// request path never waits on OPA's plugin; a full queue drops.
type decisionLogger struct {
	mgr     *plugins.Manager
	zlog    logging.Logger
	plugin  *logs.Plugin
	queue   chan func() *server.Info
	done    chan struct{}
	dropped atomic.Int64
	mu      sync.RWMutex // guards stopped against a send on the closed queue
	stopped bool
}

// newDecisionLogger starts the manager. policyPaths are the local policy
// files (policy.paths): loaded into the manager too, so that OPA's plugin
// evaluates their system.log.mask / system.log.drop rules. If they do
// not load or compile there, the logger starts without them and
// maskFromPolicy is false.
func newDecisionLogger(ctx context.Context, c *DecisionLogConfig, id string, policyPaths []string, zl *zap.Logger) (l *decisionLogger, maskFromPolicy bool, err error) {
	if zl == nil {
		zl = zap.NewNop()
	}
	ol := opaLogger{zl.Named("decision_logs")}
	if len(policyPaths) > 0 {
		res, lerr := loader.NewFileLoader().Filtered(policyPaths, func(_ string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
		})
		if lerr == nil {
			if l, err = startDecisionLogger(ctx, c, id, ol, plugins.InitFiles(*res)); err == nil {
				return l, true, nil
			}
		}
	}
	l, err = startDecisionLogger(ctx, c, id, ol)
	return l, false, err
}

func startDecisionLogger(ctx context.Context, c *DecisionLogConfig, id string, ol logging.Logger, opts ...func(*plugins.Manager)) (*decisionLogger, error) {
	raw, err := c.opaConfig()
	if err != nil {
		return nil, err
	}
	opts = append(opts, plugins.Logger(ol), plugins.ConsoleLogger(logging.NewNoOpLogger()))
	mgr, err := plugins.New(raw, id, inmem.New(), opts...)
	if err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	cfg, err := logs.NewConfigBuilder().WithBytes(mgr.Config.DecisionLogs).WithServices(mgr.Services()).
		WithPlugins(nil).WithTriggerMode(nil).Parse()
	if err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	p := logs.New(cfg, mgr)
	mgr.Register(logs.Name, p)
	if err := mgr.Start(ctx); err != nil {
		mgr.Stop(context.Background())
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	l := &decisionLogger{mgr: mgr, zlog: ol, plugin: p, queue: make(chan func() *server.Info, dlogQueue), done: make(chan struct{})}
	go l.run()
	return l, nil
}

func (l *decisionLogger) run() {
	defer close(l.done)
	for build := range l.queue {
		_ = l.plugin.Log(context.Background(), build())
	}
}

// log queues one decision; it never blocks.
func (l *decisionLogger) log(info func() *server.Info) {
	if l == nil {
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.stopped {
		return
	}
	select {
	case l.queue <- info:
	default:
		l.dropped.Add(1)
	}
}

// stop drains the queue, flushes the buffered events (bounded by
// dlogStopTimeout) and stops the manager.
func (l *decisionLogger) stop() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	close(l.queue)
	l.mu.Unlock()
	<-l.done
	ctx, cancel := context.WithTimeout(context.Background(), dlogStopTimeout)
	defer cancel()
	l.mgr.Stop(ctx)
	if n := l.dropped.Load(); n > 0 {
		l.zlog.Warn("%d decision log events dropped: the queue was full", n)
	}
}

// maskedInputKeys are header names whose values are replaced before an
// input reaches a decision log. The policy input never carries them (see
// secretHeaders); this is a second line.
func isMaskedHeader(k string) bool {
	for _, s := range secretHeaders {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return strings.EqualFold(k, "Xsrf-Token") || strings.EqualFold(k, "X-Csrf-Token")
}

// maskValue returns v with every object member named like a secret
// header (case-insensitive) replaced by "**REDACTED**", recursively.
func maskValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if isMaskedHeader(k) || strings.EqualFold(k, "password") || strings.EqualFold(k, "token") {
				out[k] = "**REDACTED**"
				continue
			}
			out[k] = maskValue(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = maskValue(e)
		}
		return out
	}
	return v
}

// decisionInfo builds the OPA event of one evaluation.
func decisionInfo(requestID string, in ast.Value, query, revision string, dec policy.Decision, evalErr error, eval time.Duration, now time.Time) *server.Info {
	var input any
	if in != nil {
		if j, err := ast.JSON(in); err == nil {
			input = maskValue(j)
		}
	}
	var result any
	if evalErr == nil {
		r := map[string]any{"allow": dec.Allow}
		if len(dec.Reasons) > 0 {
			r["reasons"] = dec.Reasons
		}
		if dec.Status != 0 {
			r["status"] = dec.Status
		}
		if len(dec.Headers) > 0 {
			h := make(map[string]any, len(dec.Headers))
			for k, vs := range dec.Headers {
				if isMaskedHeader(k) {
					h[k] = "**REDACTED**"
					continue
				}
				h[k] = vs
			}
			r["headers"] = h
		}
		result = r
	}
	info := &server.Info{
		DecisionID: audit.NewEventID(),
		Query:      query,
		Path:       queryPath(query),
		Timestamp:  now.UTC(),
		Input:      &input,
		Error:      evalErr,
		Custom:     map[string]any{"request_id": requestID},
	}
	if evalErr == nil {
		info.Results = &result
	}
	if rev := revision; rev != "" {
		info.Revision = rev
		info.Bundles = map[string]server.BundleInfo{"resetguard": {Revision: rev}}
	}
	m := metrics.New()
	m.Counter("resetguard_eval_ns").Add(uint64(max(eval, 0)))
	info.Metrics = m
	return info
}

// queryPath turns data.a.b into a/b, OPA's decision path.
func queryPath(q string) string {
	return strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(q, "data."), "data"), ".", "/")
}

// opaLogger passes the plugin's own messages (upload failures, dropped
// buffer events) to the handler's zap logger: errors and warnings as
// warnings, the rest at debug.
type opaLogger struct{ z *zap.Logger }

func (l opaLogger) Debug(f string, a ...any) { l.z.Debug(fmt.Sprintf(f, a...)) }
func (l opaLogger) Info(f string, a ...any)  { l.z.Debug(fmt.Sprintf(f, a...)) }
func (l opaLogger) Warn(f string, a ...any)  { l.z.Warn(fmt.Sprintf(f, a...)) }
func (l opaLogger) Error(f string, a ...any) { l.z.Warn(fmt.Sprintf(f, a...)) }
func (l opaLogger) WithFields(fields map[string]any) logging.Logger {
	zf := make([]zap.Field, 0, len(fields))
	for k, v := range fields {
		zf = append(zf, zap.Any(k, v))
	}
	return opaLogger{l.z.With(zf...)}
}
func (opaLogger) GetLevel() logging.Level { return logging.Debug }
func (opaLogger) SetLevel(logging.Level)  {}
