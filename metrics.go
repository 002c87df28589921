package resetguard

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// guardMetrics are process-wide collectors, registered into each config's
// registry: counts survive config reloads, as Prometheus counters must.
var guardMetrics = struct {
	once              sync.Once
	requests          *prometheus.CounterVec
	evalSeconds       prometheus.Histogram
	decisionSeconds   *prometheus.HistogramVec
	upstreamSeconds   *prometheus.HistogramVec
	bundleActivations prometheus.Counter
	bundleRejections  prometheus.Counter
	auditRecords      prometheus.Counter
	auditErrors       prometheus.Counter
	auditTornLines    prometheus.Counter
	auditTornBytes    prometheus.Counter
	principalHits     prometheus.Counter
	principalMisses   prometheus.Counter
	revisions         revisionCollector
}{}

func initMetrics(reg *prometheus.Registry) error {
	m := &guardMetrics
	m.once.Do(func() {
		m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "requests_total",
			Help: "Guarded chat-session reset requests by route (rest, agents), event type (allowed, denied), outcome (success, failure, unknown) and credential scheme (none when there was no usable credential).",
		}, []string{"route", "type", "outcome", "scheme"})
		m.evalSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "resetguard", Name: "policy_eval_seconds",
			Help:    "Policy evaluation time.",
			Buckets: []float64{5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 250e-6, 1e-3, 5e-3, 25e-3, 100e-3},
		})
		m.decisionSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "resetguard", Name: "decision_duration_seconds",
			Help:    "Time from a guarded request's arrival to the guard's decision (credential, identity, session lookup and policy), by decision (allow, deny, dry_run, error, refused).",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 500e-3, 2},
		}, []string{"decision"})
		m.upstreamSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "resetguard", Name: "upstream_duration_seconds",
			Help:    "Time the next handler (the backend) took to answer a forwarded reset, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"})
		m.bundleActivations = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "policy_bundle_activations_total",
			Help: "Remote policy bundles compiled and activated.",
		})
		m.auditRecords = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "audit_records_total",
			Help: "Audit records written.",
		})
		m.auditErrors = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "audit_write_errors_total",
			Help: "Records the durable audit file could not take (kept on the Caddy logger, marked audit_fallback).",
		})
		m.auditTornLines = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "audit_torn_lines_total",
			Help: "Torn final lines (a crash mid-write) the durable audit file cut at open; each is saved beside the file and noted in the chain by a repair record.",
		})
		m.auditTornBytes = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "audit_torn_bytes_total",
			Help: "Bytes of the torn final lines the durable audit file cut at open.",
		})
		m.bundleRejections = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "policy_bundle_rejections_total",
			Help: "Remote policy bundles rejected (download, signature or compile failure); the previous policy stayed active.",
		})
		m.principalHits = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "principal_cache_hits_total",
			Help: "Backend principal lookups answered from the cache.",
		})
		m.principalMisses = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "principal_cache_misses_total",
			Help: "Backend principal lookups that missed the cache (and asked the backend, or joined a call in flight).",
		})
		m.revisions = revisionCollector{desc: prometheus.NewDesc("resetguard_policy_revision_info",
			"The policy revisions live reset_guard handlers decide under (value 1).", []string{"revision"}, nil)}
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.evalSeconds, m.decisionSeconds, m.upstreamSeconds,
		m.bundleActivations, m.bundleRejections, m.auditRecords, m.auditErrors, m.auditTornLines, m.auditTornBytes, m.principalHits, m.principalMisses, m.revisions} {
		// Several reset_guard handlers in one config share the collectors.
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// revisionCollector reports the active revision of every live handler at
// scrape time, so that a revision no handler uses any more disappears
// without bookkeeping on each bundle activation and config reload.
type revisionCollector struct{ desc *prometheus.Desc }

// Describe sends the one descriptor.
func (c revisionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends one sample per distinct active revision.
func (c revisionCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, h := range handlersSnapshot() {
		e := h.policy.Engine()
		if e == nil || seen[e.Revision()] {
			continue
		}
		seen[e.Revision()] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, e.Revision())
	}
}

// Interface guard.
var _ prometheus.Collector = revisionCollector{}
