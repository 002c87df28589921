package resetguard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
)

// Every resetguard_* series carries the labels Caddy's own HTTP metrics
// (caddy_http_*) carry, with Caddy's values, so that the two families
// join on(server, handler):
//
//   - server: the name of the Caddy HTTP server (apps.http.servers key:
//     srv0, srv1, … from a Caddyfile, or the name given with the servers
//     global option), taken from the request's context as Caddy takes it;
//     "UNKNOWN" when there is none, as Caddy has it.
//   - handler: the module name, "reset_guard". Caddy labels a route's
//     series with the module name of the route's first handler, which is
//     reset_guard where the guard heads the route (a site block with the
//     guard at its top level: the directive order puts it first).
//
// Caddy's optional host label (metrics per_host) is not copied: the guard
// counts per route of the backend, not per site.
const (
	labelServer   = "server"
	labelHandler  = "handler"
	unknownServer = "UNKNOWN" // caddyhttp's serverNameFromContext fallback
)

// moduleName is the handler label's value, from the module ID so that the
// two cannot drift apart.
var moduleName = caddy.GetModuleName(new(Handler))

// guardMetrics are process-wide collectors, registered into each config's
// registry: counts survive config reloads, as Prometheus counters must.
var guardMetrics struct {
	once              sync.Once
	requests          *prometheus.CounterVec
	evalSeconds       *prometheus.HistogramVec
	decisionSeconds   *prometheus.HistogramVec
	upstreamSeconds   *prometheus.HistogramVec
	bundleActivations *prometheus.CounterVec
	bundleRejections  *prometheus.CounterVec
	auditRecords      *prometheus.CounterVec
	auditErrors       *prometheus.CounterVec
	auditTornLines    *prometheus.CounterVec
	auditTornBytes    *prometheus.CounterVec
	principalHits     *prometheus.CounterVec
	principalMisses   *prometheus.CounterVec
	revisions         revisionCollector
}

// constLabels is the handler label, the same on every series.
func constLabels() prometheus.Labels { return prometheus.Labels{labelHandler: moduleName} }

func newCounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "resetguard", Name: name, Help: help, ConstLabels: constLabels(),
	}, append([]string{labelServer}, labels...))
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "resetguard", Name: name, Help: help, ConstLabels: constLabels(), Buckets: buckets,
	}, append([]string{labelServer}, labels...))
}

// collectors creates the collectors once. It is called before any use, not
// only from initMetrics, so that a handler used without Provision (unit
// tests, embedding) counts instead of panicking.
func collectors() {
	m := &guardMetrics
	m.once.Do(func() {
		m.requests = newCounterVec("requests_total",
			"Guarded chat-session reset requests by Caddy server, route (rest, agents, soap), event type (allowed, denied), outcome (success, failure, unknown) and credential scheme (basic, soticket, bearer, xsrf; none when there was no usable credential).",
			"route", "type", "outcome", "scheme")
		m.evalSeconds = newHistogramVec("policy_eval_seconds",
			"Policy evaluation time, by Caddy server.",
			[]float64{5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 250e-6, 1e-3, 5e-3, 25e-3, 100e-3})
		m.decisionSeconds = newHistogramVec("decision_duration_seconds",
			"Time from a guarded request's arrival to the guard's decision (credential, identity, session lookup and policy), by Caddy server and decision (allow, deny, dry_run, error, refused).",
			[]float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 500e-3, 2},
			"decision")
		m.upstreamSeconds = newHistogramVec("upstream_duration_seconds",
			"Time the next handler (the backend) took to answer a forwarded reset, by Caddy server and route (rest, agents, soap).",
			prometheus.DefBuckets, "route")
		m.bundleActivations = newCounterVec("policy_bundle_activations_total",
			"Remote policy bundles compiled and activated, by Caddy server.")
		m.bundleRejections = newCounterVec("policy_bundle_rejections_total",
			"Remote policy bundles rejected (download, signature or compile failure), by Caddy server; the previous policy stayed active.")
		m.auditRecords = newCounterVec("audit_records_total",
			"Audit records written (refusals, outcomes, and the repair records a durable file's open appends), by Caddy server.")
		m.auditErrors = newCounterVec("audit_write_errors_total",
			"Records the durable audit file could not take, intents included (an outcome or refusal is kept on the Caddy logger, marked audit_fallback), by Caddy server.")
		m.auditTornLines = newCounterVec("audit_torn_lines_total",
			"Torn final lines (a crash mid-write) the durable audit file cut at open, by the Caddy server whose handler opened it; each is saved beside the file and noted in the chain by a repair record.")
		m.auditTornBytes = newCounterVec("audit_torn_bytes_total",
			"Bytes of the torn final lines the durable audit file cut at open, by the Caddy server whose handler opened it.")
		m.principalHits = newCounterVec("principal_cache_hits_total",
			"Backend principal lookups answered from the cache, by Caddy server.")
		m.principalMisses = newCounterVec("principal_cache_misses_total",
			"Backend principal lookups that missed the cache (and asked the backend, or joined a call in flight), by Caddy server.")
		m.revisions = revisionCollector{desc: prometheus.NewDesc("resetguard_policy_revision_info",
			"The policy revisions live reset_guard handlers decide under, by Caddy server and revision (value 1).",
			[]string{labelServer, "revision"}, constLabels())}
	})
}

func initMetrics(reg *prometheus.Registry) error {
	collectors()
	if reg == nil {
		return nil
	}
	m := &guardMetrics
	for _, c := range []prometheus.Collector{m.requests, m.evalSeconds, m.decisionSeconds, m.upstreamSeconds,
		m.bundleActivations, m.bundleRejections, m.auditRecords, m.auditErrors, m.auditTornLines, m.auditTornBytes, m.principalHits, m.principalMisses, m.revisions} {
		// Several reset_guard handlers in one config share the collectors,
		// and a reload may hand over the registry they are already in.
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// serverMetrics is one Caddy server's share of the collectors: the
// children without further labels, resolved once (so that they are
// exported at 0 from the handler's provisioning on, and cost no label
// lookup per request), and the server label for those with more labels.
// Those are looked up with WithLabelValues, which allocates nothing; a
// vector curried with the server would (one allocation per histogram
// lookup in client_golang 1.24).
type serverMetrics struct {
	server string

	evalSeconds       prometheus.Observer
	bundleActivations prometheus.Counter
	bundleRejections  prometheus.Counter
	auditRecords      prometheus.Counter
	auditErrors       prometheus.Counter
	auditTornLines    prometheus.Counter
	auditTornBytes    prometheus.Counter
	principalHits     prometheus.Counter
	principalMisses   prometheus.Counter
}

func newServerMetrics(server string) *serverMetrics {
	collectors()
	m := &guardMetrics
	return &serverMetrics{
		server:            server,
		evalSeconds:       m.evalSeconds.WithLabelValues(server),
		bundleActivations: m.bundleActivations.WithLabelValues(server),
		bundleRejections:  m.bundleRejections.WithLabelValues(server),
		auditRecords:      m.auditRecords.WithLabelValues(server),
		auditErrors:       m.auditErrors.WithLabelValues(server),
		auditTornLines:    m.auditTornLines.WithLabelValues(server),
		auditTornBytes:    m.auditTornBytes.WithLabelValues(server),
		principalHits:     m.principalHits.WithLabelValues(server),
		principalMisses:   m.principalMisses.WithLabelValues(server),
	}
}

// request counts a guarded request's one record.
func (m *serverMetrics) request(route, typ, outcome, scheme string) {
	guardMetrics.requests.WithLabelValues(m.server, route, typ, outcome, scheme).Inc()
}

// decided observes the time from arrival to the guard's decision.
func (m *serverMetrics) decided(verdict string, d time.Duration) {
	guardMetrics.decisionSeconds.WithLabelValues(m.server, verdict).Observe(d.Seconds())
}

// upstream observes the backend's time for a forwarded reset.
func (m *serverMetrics) upstream(route string, d time.Duration) {
	guardMetrics.upstreamSeconds.WithLabelValues(m.server, route).Observe(d.Seconds())
}

// perServer caches serverMetrics by server name. It is read on every
// guarded request, so reads take no lock: a write (a server name seen for
// the first time) copies the map. Server names come from the config, not
// from clients, so the map stays as small as the configs were.
var perServer struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*serverMetrics]
}

// metricsForServer is the named server's share of the collectors.
func metricsForServer(name string) *serverMetrics {
	if m := perServer.m.Load(); m != nil {
		if sm, ok := (*m)[name]; ok {
			return sm
		}
	}
	perServer.mu.Lock()
	defer perServer.mu.Unlock()
	var old map[string]*serverMetrics
	if m := perServer.m.Load(); m != nil {
		old = *m
	}
	if sm, ok := old[name]; ok {
		return sm
	}
	next := make(map[string]*serverMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	sm := newServerMetrics(name)
	next[name] = sm
	perServer.m.Store(&next)
	return sm
}

// serverName is the name of the Caddy HTTP server ctx belongs to, found
// as Caddy's own metrics find it: a request's context carries its
// *caddyhttp.Server, and so does the context Caddy provisions a server's
// handlers with.
func serverName(ctx context.Context) string {
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil && srv.Name() != "" {
		return srv.Name()
	}
	return unknownServer
}

// metricsFor is the share of the server ctx belongs to: per request, the
// server that accepted it.
func metricsFor(ctx context.Context) *serverMetrics { return metricsForServer(serverName(ctx)) }

// boundMetrics maps each provisioned handler to its server's share, for
// what a handler counts outside a request's context (audit file, bundle
// activations, revision info). Entries leave at Cleanup.
var boundMetrics sync.Map // *Handler → *serverMetrics

// bindMetrics notes the server the handler is provisioned for (ctx is its
// provisioning context) and returns its share.
func (h *Handler) bindMetrics(ctx context.Context) *serverMetrics {
	sm := metricsFor(ctx)
	boundMetrics.Store(h, sm)
	return sm
}

// unbindMetrics forgets the handler; its series stay, as counters must.
func (h *Handler) unbindMetrics() { boundMetrics.Delete(h) }

// metrics is the share of the server the handler was provisioned for;
// the "UNKNOWN" server's for a handler used without Provision.
func (h *Handler) metrics() *serverMetrics {
	if sm, ok := boundMetrics.Load(h); ok {
		return sm.(*serverMetrics)
	}
	return metricsForServer(unknownServer)
}

// revisionCollector reports the active revision of every live handler at
// scrape time, so that a revision no handler uses any more disappears
// without bookkeeping on each bundle activation and config reload.
type revisionCollector struct{ desc *prometheus.Desc }

// Describe sends the one descriptor.
func (c revisionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect sends one sample per distinct server and active revision.
func (c revisionCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[2]string]bool{}
	for _, h := range handlersSnapshot() {
		e := h.policy.Engine()
		if e == nil {
			continue
		}
		key := [2]string{h.metrics().server, e.Revision()}
		if seen[key] {
			continue
		}
		seen[key] = true
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, key[0], key[1])
	}
}

// Interface guard.
var _ prometheus.Collector = revisionCollector{}
