package integration_test

// The policy through the real gateway: its decisions, statuses and headers,
// dry run, a bundle service swapping revisions under load, and the session
// lookup that feeds it. Reloading policy files is zz_reload_test.go.

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/bundletest"
)

func TestResetPolicyDecisions(t *testing.T) {
	runCases(t, []itCase{
		{
			name: "policy header from the client is replaced", method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-ResetGuard-Decision": "forged"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "basic"),
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if vs := got[0].Header.Values("X-ResetGuard-Decision"); len(vs) != 1 || vs[0] != "allow" {
					t.Errorf("upstream X-ResetGuard-Decision = %q, want only the policy's value", vs)
				}
			},
		},
		{
			name: "denied by policy", method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": basic("mallory", "hunter2")},
			wantStatus: 403, wantReason: "mallory_refused", wantHeaders: map[string]string{"X-Denied-By": "policy"},
			wantAudit: withFields(deniedRecord(403, "mallory_refused"), "resetguard.decision.allow", false,
				"resetguard.decision.reasons", []any{"mallory_refused"}, "user.name", "mallory"),
		},
		{
			name: "policy chooses the deny status", method: "POST", path: "/api/v1/ChatSession/666/Reset", headers: botAuth,
			wantStatus: 423, wantReason: "session_locked", wantAudit: deniedRecord(423, "session_locked"),
		},
		{
			name: "policy evaluation error fails closed", method: "POST", path: "/api/v1/ChatSession/13/Reset", headers: botAuth,
			wantStatus: 503, wantReason: "policy_error",
			wantAudit: withFields(deniedRecord(503, "policy_error"), "resetguard.decision.allow", false),
		},
		{
			name: "dry run forwards a denied call and records the decision", base: dryRunURL, method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": basic("mallory", "hunter2")},
			wantStatus: 200, wantForwarded: true,
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "success",
				"resetguard.decision.allow": false, "resetguard.decision.dry_run": true,
				"resetguard.decision.reasons": []any{"mallory_refused"}},
		},
	})
}

// bundleReset sends the bot's reset to a bundle-fed instance and returns
// the status and, on a 403, the first reason (the deciding revision).
func bundleReset(base string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+restReset, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", basic("bot", "hunter2"))
	req.Header.Set("X-Test-Case", "hot-swap")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode == http.StatusForbidden {
		return resp.StatusCode, firstReason(body), nil
	}
	return resp.StatusCode, "", nil
}

// bundleLoad keeps 4 clients per instance sending resets, and notes every
// answer that is neither an allow nor a policy's deny.
type bundleLoad struct {
	stopOnce sync.Once
	stopped  chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	failures []string
	total    int
}

func startBundleLoad(t *testing.T, instances []string) *bundleLoad {
	l := &bundleLoad{stopped: make(chan struct{})}
	for _, base := range instances {
		for range 4 {
			l.wg.Add(1)
			go l.run(base)
		}
	}
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *bundleLoad) run(base string) {
	defer l.wg.Done()
	for {
		select {
		case <-l.stopped:
			return
		default:
		}
		code, _, err := bundleReset(base)
		l.mu.Lock()
		l.total++
		if err != nil || (code != http.StatusOK && code != http.StatusForbidden) {
			l.failures = append(l.failures, fmt.Sprintf("%s: %d %v", base, code, err))
		}
		l.mu.Unlock()
	}
}

// stop ends the load and returns how many requests ran and which failed.
func (l *bundleLoad) stop() (int, []string) {
	l.stopOnce.Do(func() { close(l.stopped) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.failures
}

// TestBundleHotSwap: two gateway instances poll one bundle service. While
// requests run, a new revision is served and both switch to it within the
// polling interval without a failed request; then a bundle that does not
// compile is served and the previous revision keeps deciding.
func TestBundleHotSwap(t *testing.T) {
	g := startGateway(t)
	instances := []string{bundleURL1, bundleURL2}
	for _, base := range instances {
		if code, _, err := bundleReset(base); err != nil || code != http.StatusOK {
			t.Fatalf("%s under v1: %d %v, want 200", base, code, err)
		}
	}
	load := startBundleLoad(t, instances)
	swapToDenyingV2(t, g, instances)
	serveBrokenBundle(t, g, instances)
	total, failures := load.stop()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during the swaps, first: %s", len(failures), total, failures[0])
	}
	if total < 50 {
		t.Fatalf("only %d requests ran under load; the test proves little", total)
	}
	t.Logf("%d requests under load, none failed", total)
	checkBundleRecordsAndMetrics(t, g)
}

// swapToDenyingV2 serves v2, which denies, and waits for every instance
// to decide under it.
func swapToDenyingV2(t *testing.T, g *gateway, instances []string) {
	t.Helper()
	v2, err := bundletest.Build("v2", []string{"resetguard"}, bundlePolicy("v2", false), "", "")
	if err != nil {
		t.Fatal(err)
	}
	swapped := time.Now()
	g.bundles.Set(v2)
	for _, base := range instances {
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, reason, err := bundleReset(base)
			if err == nil && code == http.StatusForbidden && reason == "v2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not switch to v2 within 5s (polling interval 1s): %d %s %v", base, code, reason, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("both instances decided under v2 %s after it was served", time.Since(swapped).Round(time.Millisecond))
}

// serveBrokenBundle serves a bundle that does not compile until both
// instances fetched it, and checks that v2 still decides.
func serveBrokenBundle(t *testing.T, g *gateway, instances []string) {
	t.Helper()
	broken, err := bundletest.Build("v3-broken", []string{"resetguard"},
		map[string]string{"resetguard/policy.rego": "package resetguard\n\ndecision := {\"allow\": true, \"reasons\": [x]}\n"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	polls := g.bundles.Requests.Load()
	g.bundles.Set(broken)
	waitUntil := time.Now().Add(10 * time.Second)
	for g.bundles.Requests.Load() < polls+4 { // both instances fetched it at least twice
		if time.Now().After(waitUntil) {
			t.Fatal("instances stopped polling")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, base := range instances {
		if code, reason, err := bundleReset(base); err != nil || code != http.StatusForbidden || reason != "v2" {
			t.Fatalf("%s after a broken bundle: %d %q %v; v2 must keep deciding", base, code, reason, err)
		}
	}
}

// checkBundleRecordsAndMetrics: the records name the revision each
// decision was made under, and activations and rejections are exported
// on Caddy's /metrics.
func checkBundleRecordsAndMetrics(t *testing.T, g *gateway) {
	t.Helper()
	revs := map[string]int{}
	for _, rec := range g.newAuditLines(t) {
		if rev, ok := field(rec, "resetguard.decision.policy_revision").(string); ok {
			revs[rev]++
		}
	}
	if revs["v1"] == 0 || revs["v2"] == 0 || revs["v3-broken"] != 0 {
		t.Fatalf("audit revisions %v: want v1 and v2, never the broken v3", revs)
	}
	metrics := scrape(t)
	if v := sumSeries(metrics, "resetguard_policy_bundle_activations_total"); v < 4 { // v1 and v2 on each instance
		t.Errorf("bundle activations = %v, want >= 4", v)
	}
	if v := sumSeries(metrics, "resetguard_policy_bundle_rejections_total"); v < 2 {
		t.Errorf("bundle rejections = %v, want >= 2 (v3 on each instance)", v)
	}
	if v := sumSeries(metrics, "resetguard_requests_total", "outcome", "failure", "route", "rest", "scheme", "basic", "type", "denied"); v < 1 {
		t.Errorf("denied requests = %v, want > 0", v)
	}
}

// TestSessionLookup: with session_lookup, the policy sees the session as
// the backend has it now, fetched with the caller's own credential; a
// failed lookup refuses the reset.
func TestSessionLookup(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)
	tests := []struct {
		id         string
		wantStatus int
		wantReason string
	}{
		{"427", 200, ""},
		{"77", 409, "session_closed"},
		{"78", 503, "session_lookup_failed"},
		{"79", 404, "session_not_found"},
		{"80", 503, "session_lookup_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			auth := basic("bot", "hunter2")
			resp, body := post(t, lookupURL, "/SuperOffice/api/v1/ChatSession/"+tt.id+"/Reset", auth,
				map[string]string{"X-Test-Case": "lookup-case-" + tt.id})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			lookups := g.backend.requests("lookup-" + tt.id)
			if len(lookups) != 1 {
				t.Fatalf("backend saw %d lookups, want 1", len(lookups))
			}
			if lookups[0].Header.Get("Authorization") != auth || !strings.EqualFold(lookups[0].Path, "/superoffice/api/v1/ChatSession/"+tt.id) {
				t.Errorf("lookup %s with Authorization %q; want the caller's credential under the request's prefix", lookups[0].Path, lookups[0].Header.Get("Authorization"))
			}
			forwarded := len(g.backend.requests("lookup-case-" + tt.id))
			if (tt.wantStatus == 200) != (forwarded == 1) {
				t.Errorf("reset forwarded %d times for status %d", forwarded, tt.wantStatus)
			}
			recs := g.newAuditLines(t)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1", len(recs))
			}
			if tt.wantReason != "" && field(recs[0], "event.reason") != tt.wantReason {
				t.Errorf("audit reason %v, want %s", field(recs[0], "event.reason"), tt.wantReason)
			}
		})
	}
}
