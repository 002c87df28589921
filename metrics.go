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
	bundleActivations prometheus.Counter
	bundleRejections  prometheus.Counter
	auditRecords      prometheus.Counter
	auditErrors       prometheus.Counter
}{}

func initMetrics(reg *prometheus.Registry) error {
	m := &guardMetrics
	m.once.Do(func() {
		m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "requests_total",
			Help: "Guarded chat-session reset requests by route, event type (allowed, denied) and outcome.",
		}, []string{"route", "type", "outcome"})
		m.evalSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "resetguard", Name: "policy_eval_seconds",
			Help:    "Policy evaluation time.",
			Buckets: []float64{5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 250e-6, 1e-3, 5e-3, 25e-3, 100e-3},
		})
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
		m.bundleRejections = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "resetguard", Name: "policy_bundle_rejections_total",
			Help: "Remote policy bundles rejected (download, signature or compile failure); the previous policy stayed active.",
		})
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.evalSeconds, m.bundleActivations, m.bundleRejections, m.auditRecords, m.auditErrors} {
		// Several reset_guard handlers in one config share the collectors.
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}
