package resetguard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/classify"
)

// serverProbe is a test-only handler that keeps the server its
// provisioning context carries: a server gets its name only from the HTTP
// app's Provision, so this is the way to a *caddyhttp.Server named as
// Caddy names them.
type serverProbe struct{}

// probedServers are the servers serverProbe saw, by name.
var probedServers sync.Map // string → *caddyhttp.Server

func init() { caddy.RegisterModule(serverProbe{}) }

func (serverProbe) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.resetguard_test_server_probe", New: func() caddy.Module { return new(serverProbe) }}
}

func (serverProbe) Provision(ctx caddy.Context) error {
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
		probedServers.Store(srv.Name(), srv)
	}
	return nil
}

func (serverProbe) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

// namedServers provisions (caddy.Validate: nothing listens) an HTTP app
// with one server per name, each routing to the probe and to a
// reset_guard handler, and returns the servers.
func namedServers(t *testing.T, names ...string) map[string]*caddyhttp.Server {
	t.Helper()
	servers := map[string]any{}
	for i, n := range names {
		servers[n] = map[string]any{
			// Validate binds nothing; the addresses need only differ.
			"listen": []string{"127.0.0.1:" + strconv.Itoa(1+i)},
			"routes": []any{map[string]any{"handle": []any{
				map[string]any{"handler": "resetguard_test_server_probe"},
				map[string]any{"handler": "reset_guard", "policy": map[string]any{
					"paths": []string{"testdata/caddy"}, "query": "data.resetguard.test.decision"}},
			}}},
		}
	}
	raw, err := json.Marshal(map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps":  map[string]any{"http": map[string]any{"servers": servers}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	out := map[string]*caddyhttp.Server{}
	for _, n := range names {
		srv, ok := probedServers.Load(n)
		if !ok {
			t.Fatalf("server %q was not provisioned", n)
		}
		out[n] = srv.(*caddyhttp.Server)
	}
	return out
}

// sample is the value of the series of family with exactly labels (the
// handler label included), summed over nothing: a counter's or gauge's
// value, a histogram's count; -1 when there is no such series.
func sample(t *testing.T, reg *prometheus.Registry, family string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels)+1 {
				continue
			}
			for _, lp := range m.GetLabel() {
				want, ok := labels[lp.GetName()]
				if lp.GetName() == labelHandler {
					want, ok = moduleName, true
				}
				if !ok || lp.GetValue() != want {
					continue series
				}
			}
			switch {
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func testRegistry(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := initMetrics(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestMetricsServerLabel: a guarded request's series carry the name of
// the Caddy server that accepted it, found in the request's context as
// Caddy's own metrics find it, and "UNKNOWN" without one, as Caddy has
// it; what a handler counts outside a request carries the server it was
// provisioned for.
func TestMetricsServerLabel(t *testing.T) {
	reg := testRegistry(t)
	servers := namedServers(t, "gateway-a", "gateway-b")
	// Provisioning inside Caddy bound each handler to its server: the
	// counters without further labels are exported at 0 from then on.
	for name := range servers {
		if v := sample(t, reg, "resetguard_audit_write_errors_total", map[string]string{"server": name}); v != 0 {
			t.Errorf("audit_write_errors_total{server=%q} = %v after provisioning, want 0", name, v)
		}
	}
	entity := entityFixture(t)
	next := handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(entity)
		return nil
	})
	tests := []struct {
		name string
		srv  *caddyhttp.Server // nil: no server in the context
		want string
	}{
		{"named server", servers["gateway-a"], "gateway-a"},
		{"another server", servers["gateway-b"], "gateway-b"},
		{"server without a name", &caddyhttp.Server{}, unknownServer},
		{"no server in the context", nil, unknownServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.srv != nil {
				ctx = context.WithValue(ctx, caddyhttp.ServerCtxKey, tt.srv)
			}
			if got := serverName(ctx); got != tt.want {
				t.Fatalf("serverName = %q, want %q", got, tt.want)
			}
			pctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
			defer cancel()
			h := &Handler{Policy: testPolicy()}
			if err := h.Provision(pctx); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = h.Cleanup() }()
			h.sink = audit.NewSink(zap.NewNop())

			srv := map[string]string{"server": tt.want}
			with := func(kv ...string) map[string]string {
				m := map[string]string{"server": tt.want}
				for i := 0; i < len(kv); i += 2 {
					m[kv[i]] = kv[i+1]
				}
				return m
			}
			watched := []struct {
				family string
				labels map[string]string
				grow   float64
			}{
				{"resetguard_requests_total", with("route", "rest", "type", "allowed", "outcome", "success", "scheme", "basic"), 1},
				{"resetguard_requests_total", with("route", "rest", "type", "denied", "outcome", "failure", "scheme", "basic"), 1},
				{"resetguard_decision_duration_seconds", with("decision", "allow"), 1},
				{"resetguard_decision_duration_seconds", with("decision", "deny"), 1},
				{"resetguard_policy_eval_seconds", srv, 2},
				{"resetguard_upstream_duration_seconds", with("route", "rest"), 1},
				{"resetguard_audit_records_total", srv, 2},
				{"resetguard_policy_revision_info", with("revision", h.policy.Engine().Revision()), 0},
			}
			before := make([]float64, len(watched))
			for i, w := range watched {
				before[i] = max(sample(t, reg, w.family, w.labels), 0)
			}
			for _, user := range []string{"bot", "mallory"} {
				r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil).WithContext(ctx)
				r.SetBasicAuth(user, "pw")
				if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
					t.Fatal(err)
				}
			}
			for i, w := range watched {
				got := sample(t, reg, w.family, w.labels)
				if w.grow == 0 { // an info series: present, 1
					if got != 1 {
						t.Errorf("%s%v = %v, want 1", w.family, w.labels, got)
					}
					continue
				}
				// Exact for a named server; other tests count on UNKNOWN.
				if d := got - before[i]; d != w.grow && (tt.want != unknownServer || d < w.grow) {
					t.Errorf("%s%v grew by %v, want %v", w.family, w.labels, d, w.grow)
				}
			}
		})
	}
}

// TestMetricsHelpNamesLabelValues: every resetguard_* family carries the
// server and handler labels Caddy's own HTTP metrics carry, and its HELP
// text names the label and every value the code can give it.
func TestMetricsHelpNamesLabelValues(t *testing.T) {
	reg := testRegistry(t)
	// Give every vector a child, so that every family is gathered.
	sm := metricsForServer("help-test")
	sm.request("soap", "allowed", "success", "basic")
	sm.decided(verdictAllow, time.Millisecond)
	sm.upstream("soap", time.Millisecond)
	provisioned(t, &Handler{Policy: testPolicy()}) // a live revision

	routes := []string{string(classify.REST), string(classify.Agents), string(classify.SOAP)}
	var schemes []string
	for _, s := range credential.AllSchemes {
		schemes = append(schemes, string(s))
	}
	schemes = append(schemes, "none")
	// values nil: the label's values are not an enumeration.
	tests := []struct {
		family string
		labels map[string][]string
	}{
		{"resetguard_requests_total", map[string][]string{
			"route":   routes,
			"type":    {"allowed", "denied"},
			"outcome": {audit.OutcomeSuccess, audit.OutcomeFailure, audit.OutcomeUnknown},
			"scheme":  schemes,
		}},
		{"resetguard_decision_duration_seconds", map[string][]string{
			"decision": {verdictAllow, verdictDeny, verdictDryRun, verdictError, verdictRefused},
		}},
		{"resetguard_upstream_duration_seconds", map[string][]string{"route": routes}},
		{"resetguard_policy_revision_info", map[string][]string{"revision": nil}},
		{"resetguard_policy_eval_seconds", nil},
		{"resetguard_policy_bundle_activations_total", nil},
		{"resetguard_policy_bundle_rejections_total", nil},
		{"resetguard_audit_records_total", nil},
		{"resetguard_audit_write_errors_total", nil},
		{"resetguard_audit_torn_lines_total", nil},
		{"resetguard_audit_torn_bytes_total", nil},
		{"resetguard_principal_cache_hits_total", nil},
		{"resetguard_principal_cache_misses_total", nil},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gathered := map[string]bool{}
	for _, mf := range mfs {
		gathered[mf.GetName()] = true
	}
	for _, tt := range tests {
		t.Run(tt.family, func(t *testing.T) {
			i := len(mfs) - 1
			for i >= 0 && mfs[i].GetName() != tt.family {
				i--
			}
			if i < 0 {
				t.Fatal("not gathered")
			}
			delete(gathered, tt.family)
			help := mfs[i].GetHelp()
			want := []string{labelHandler, labelServer}
			for l := range tt.labels {
				want = append(want, l)
			}
			sort.Strings(want)
			for _, m := range mfs[i].GetMetric() {
				var got []string
				for _, lp := range m.GetLabel() {
					got = append(got, lp.GetName())
					if lp.GetName() == labelHandler && lp.GetValue() != "reset_guard" {
						t.Errorf("handler label %q, want reset_guard", lp.GetValue())
					}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("labels %v, want %v", got, want)
				}
			}
			words := []string{"Caddy server"}
			for l, vs := range tt.labels {
				if l != "type" { // HELP says "event type"
					words = append(words, l)
				}
				words = append(words, vs...)
			}
			for _, w := range words {
				if !regexp.MustCompile(`\b` + regexp.QuoteMeta(w) + `\b`).MatchString(help) {
					t.Errorf("HELP %q does not name %q", help, w)
				}
			}
		})
	}
	for f := range gathered {
		if regexp.MustCompile(`^resetguard_`).MatchString(f) {
			t.Errorf("family %s is not checked here", f)
		}
	}
}

// TestMetricsSurviveReload: registering again into the same registry
// (several handlers in one config) and into a new one (a config reload)
// succeeds, and the new registry exports the counts made before.
func TestMetricsSurviveReload(t *testing.T) {
	first := testRegistry(t)
	if err := initMetrics(first); err != nil {
		t.Fatalf("second registration in one registry: %v", err)
	}
	sm := metricsForServer("reload-test")
	sm.request("agents", "denied", "failure", "none")
	sm.auditRecords.Inc()
	second := testRegistry(t)
	for _, s := range []struct {
		family string
		labels map[string]string
	}{
		{"resetguard_requests_total", map[string]string{"server": "reload-test", "route": "agents", "type": "denied", "outcome": "failure", "scheme": "none"}},
		{"resetguard_audit_records_total", map[string]string{"server": "reload-test"}},
	} {
		a, b := sample(t, first, s.family, s.labels), sample(t, second, s.family, s.labels)
		if a < 1 || a != b {
			t.Errorf("%s%v: %v before the reload, %v after, want the same count", s.family, s.labels, a, b)
		}
	}
}

// TestMetricsPerRequestAllocations: finding the request's server and
// counting a guarded request allocates nothing once the series exist.
func TestMetricsPerRequestAllocations(t *testing.T) {
	servers := namedServers(t, "alloc-test")
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r = r.WithContext(context.WithValue(r.Context(), caddyhttp.ServerCtxKey, servers["alloc-test"]))
	count := func() {
		m := metricsFor(r.Context())
		m.evalSeconds.Observe(1e-5)
		m.decided(verdictAllow, time.Millisecond)
		m.upstream("rest", time.Millisecond)
		m.request("rest", "allowed", "success", "basic")
	}
	count()
	if a := testing.AllocsPerRun(100, count); a != 0 {
		t.Errorf("%v allocations per request, want 0", a)
	}
	if got := metricsFor(r.Context()).server; got != "alloc-test" {
		t.Errorf("server %q", got)
	}
}
