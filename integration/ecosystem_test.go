package integration_test

// How the guard fits Caddy: placeholders for later handlers, refusals
// restyled by handle_errors, XML refusals, the admin status route and the
// Prometheus metrics.

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPlaceholdersInHeaders: a deferred header directive copies the
// {http.reset_guard.*} placeholders into the response, for allowed and
// refused resets, and none carries the credential.
func TestPlaceholdersInHeaders(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)
	tests := []struct {
		name, user string
		path       string
		wantStatus int
		want       map[string]string
	}{
		{"allowed", "bot", "/api/v1/ChatSession/427/Reset", 200,
			map[string]string{"X-RG-Decision": "allow", "X-RG-Session": "427", "X-RG-Principal": "bot", "X-RG-Reasons": "ok"}},
		{"denied", "mallory", "/api/v1/ChatSession/428/Reset", 403,
			map[string]string{"X-RG-Decision": "deny", "X-RG-Session": "428", "X-RG-Principal": "mallory", "X-RG-Reasons": "mallory_refused"}},
		{"refused before the policy", "bot", "/api/v1/ChatSession/0/Reset", 400,
			map[string]string{"X-RG-Decision": "refused", "X-RG-Reasons": "bad_session_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, placeholdersURL, tt.path, basic(tt.user, "hunter2"), map[string]string{"X-Request-Id": "it-" + tt.user + "-1"})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			for k, v := range tt.want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := resp.Header.Get("X-Request-Id"); got != "it-"+tt.user+"-1" {
				t.Errorf("X-Request-Id %q: want the client's id", got)
			}
			for k, vs := range resp.Header {
				if strings.HasPrefix(k, "X-Rg-") && strings.Contains(strings.Join(vs, ""), "hunter2") {
					t.Errorf("%s carries the password", k)
				}
			}
			// {http.reset_guard.event_id} is the logged record's own id;
			// the client's id is its http.request.id.
			recs := g.newAuditLines(t)
			if len(recs) != 1 || field(recs[0], "http.request.id") != "it-"+tt.user+"-1" {
				t.Fatalf("want one audit record with the client's request id, got %d", len(recs))
			}
			if got := resp.Header.Get("X-RG-Event"); got == "" || got != field(recs[0], "event.id") || got == "it-"+tt.user+"-1" {
				t.Errorf("X-RG-Event %q, record's event.id %v: want the record's own id", got, field(recs[0], "event.id"))
			}
		})
	}
}

// TestRefusalRestyledByHandleErrors: with errors handle_errors the
// operator's error route writes the refusal, from placeholders, after the
// one audit record; the challenge header survives.
func TestRefusalRestyledByHandleErrors(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)
	resp, body := post(t, handleErrorsURL, restReset, basic("mallory", "hunter2"), nil)
	id := resp.Header.Get("X-Request-Id")
	want := fmt.Sprintf("refused 403 AccessDeniedException reasons=mallory_refused id=%s", id)
	if resp.StatusCode != 403 || string(body) != want || id == "" {
		t.Errorf("got %d %q, want 403 %q", resp.StatusCode, body, want)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q: the error route's, not the guard's", ct)
	}
	resp, body = post(t, handleErrorsURL, restReset, "", nil)
	if resp.StatusCode != 401 || !strings.Contains(string(body), "reasons=missing_credentials") || len(resp.Header.Values("WWW-Authenticate")) == 0 {
		t.Errorf("unauthenticated: %d %q, challenges %q", resp.StatusCode, body, resp.Header.Values("WWW-Authenticate"))
	}
	if recs := g.newAuditLines(t); len(recs) != 2 {
		t.Errorf("%d audit records, want 2", len(recs))
	}
	// Allowed resets are untouched by the error route.
	if resp, _ := post(t, handleErrorsURL, restReset, basic("bot", "hunter2"), nil); resp.StatusCode != 200 {
		t.Errorf("allowed reset: %d", resp.StatusCode)
	}
	g.newAuditLines(t)
}

// TestRefusalAsXML: a client that prefers XML gets the same fields as
// XML.
func TestRefusalAsXML(t *testing.T) {
	g := startGateway(t)
	resp, body := post(t, gatewayURL, restReset, basic("mallory", "hunter2"), map[string]string{"Accept": "application/xml"})
	g.newAuditLines(t)
	var eb struct {
		XMLName      xml.Name
		Error        bool
		ErrorType    string
		ErrorMessage string
		ErrorSource  string
		Status       int
		Reasons      []string `xml:"Reasons>Reason"`
		RequestID    string   `xml:"RequestId"`
	}
	if err := xml.Unmarshal(body, &eb); err != nil {
		t.Fatalf("XML refusal: %v: %s", err, body)
	}
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/xml") ||
		!eb.Error || eb.ErrorType != "AccessDeniedException" || eb.ErrorSource != "ResetGuard" || eb.Status != 403 ||
		strings.Join(eb.Reasons, ",") != "mallory_refused" || eb.RequestID != resp.Header.Get("X-Request-Id") || eb.ErrorMessage == "" {
		t.Errorf("got %d %s: %+v", resp.StatusCode, resp.Header.Get("Content-Type"), eb)
	}
}

// TestAdminStatus: the admin route lists every live handler with its
// policy revision, bundle history, audit sink health and request counts.
func TestAdminStatus(t *testing.T) {
	g := startGateway(t)
	before := getStatus(t)
	post(t, placeholdersURL, restReset, basic("bot", "hunter2"), nil)
	post(t, placeholdersURL, restReset, basic("mallory", "hunter2"), nil)
	post(t, bundleURL1, restReset, basic("bot", "hunter2"), nil)
	g.newAuditLines(t)
	st := getStatus(t)
	if len(st.Handlers) < 13 {
		t.Fatalf("%d handlers listed, want one per reset_guard site (13)", len(st.Handlers))
	}
	seen := map[uint64]bool{}
	var named, remote, durable int
	for _, h := range st.Handlers {
		if seen[h.Instance] || h.Instance == 0 {
			t.Errorf("instance %d listed twice or unnumbered", h.Instance)
		}
		seen[h.Instance] = true
		if h.Audit.Logger != "http.handlers.reset_guard.audit" {
			t.Errorf("instance %d audit logger %q", h.Instance, h.Audit.Logger)
		}
		if !h.Policy.Ready || h.Policy.Revision == "" || h.Policy.Query == "" {
			t.Errorf("instance %d policy %+v: want ready with a revision", h.Instance, h.Policy)
		}
		switch {
		case h.Name == "placeholders":
			named++
			checkPlaceholdersCounts(t, before, h.Instance, h.Requests.Allowed, h.Requests.Denied)
		case h.Policy.Remote != "":
			remote++
			b := h.Policy.Bundle
			if b == nil || b.Activations < 1 || b.LastActivation == "" || !strings.Contains(h.Policy.Remote, "bundles/resetguard.tar.gz") {
				t.Errorf("remote instance %d bundle %+v remote %q", h.Instance, b, h.Policy.Remote)
			}
		case h.Audit.File != nil:
			durable++
			if !h.Audit.File.Healthy || h.Audit.File.Path == "" || h.Audit.File.Error != "" {
				t.Errorf("durable instance %d audit file %+v: want healthy", h.Instance, h.Audit.File)
			}
		}
	}
	if named != 1 || remote != 2 || durable < 2 {
		t.Errorf("named %d, remote %d, durable %d: want 1, 2 and at least 2", named, remote, durable)
	}
	req, _ := http.NewRequest(http.MethodPost, adminURL+"/reset_guard/status", http.NoBody)
	if resp, _ := doRequest(t, req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST status route: %d, want 405", resp.StatusCode)
	}
}

// checkPlaceholdersCounts: the placeholders instance counted one more
// allowed success and one more denied failure than in before.
func checkPlaceholdersCounts(t *testing.T, before adminStatus, instance uint64, allowed, denied map[string]int64) {
	t.Helper()
	var prev map[string]int64
	for _, b := range before.Handlers {
		if b.Instance == instance {
			prev = b.Requests.Allowed
			if got, was := denied["failure"], b.Requests.Denied["failure"]; got != was+1 {
				t.Errorf("denied count %d, was %d: want one more", got, was)
			}
		}
	}
	if prev == nil || allowed["success"] != prev["success"]+1 {
		t.Errorf("allowed counts %v, were %v: want one more success", allowed, prev)
	}
}

// TestMetricsExported: the guard's metrics reach Caddy's admin /metrics,
// labelled as Caddy labels its own HTTP metrics (server: the name of the
// server that accepted the request; handler: reset_guard), and move with
// the requests that feed them; the HELP texts name the label values.
func TestMetricsExported(t *testing.T) {
	g := startGateway(t)
	placeholders, lookupP := serverOf(t, placeholdersURL), serverOf(t, lookupPURL)
	if placeholders == lookupP {
		t.Fatalf("sites %s and %s share server %q", placeholdersURL, lookupPURL, placeholders)
	}
	before := scrape(t)
	post(t, placeholdersURL, restReset, basic("bot", "hunter2"), nil)
	post(t, placeholdersURL, restReset, basic("mallory", "hunter2"), nil)
	post(t, placeholdersURL, restReset, "", nil)
	post(t, lookupPURL, restReset, "SoTicket 7T:dW5rbm93bg==", nil) // unknown: a miss, not cached
	post(t, lookupPURL, restReset, "SoTicket 7T:Ym90LXRpY2tldA==", nil)
	post(t, lookupPURL, restReset, "SoTicket 7T:Ym90LXRpY2tldA==", nil) // a hit at least
	g.newAuditLines(t)
	after := scrape(t)
	delta := func(family string, labels ...string) float64 {
		return sumSeries(after, family, labels...) - sumSeries(before, family, labels...)
	}
	tests := []struct {
		family string
		labels []string
		min    float64
	}{
		{"resetguard_requests_total", []string{"server", placeholders, "route", "rest", "type", "allowed", "outcome", "success", "scheme", "basic"}, 1},
		{"resetguard_requests_total", []string{"server", placeholders, "route", "rest", "type", "denied", "outcome", "failure", "scheme", "basic"}, 1},
		{"resetguard_requests_total", []string{"server", placeholders, "route", "rest", "type", "denied", "outcome", "failure", "scheme", "none"}, 1},
		{"resetguard_requests_total", []string{"server", lookupP, "route", "rest", "scheme", "soticket"}, 3},
		{"resetguard_decision_duration_seconds_count", []string{"server", placeholders, "decision", "allow"}, 1},
		{"resetguard_decision_duration_seconds_count", []string{"server", placeholders, "decision", "deny"}, 1},
		{"resetguard_decision_duration_seconds_count", []string{"server", placeholders, "decision", "refused"}, 1},
		{"resetguard_upstream_duration_seconds_count", []string{"server", placeholders, "route", "rest"}, 1},
		{"resetguard_policy_eval_seconds_count", []string{"server", placeholders}, 2},
		{"resetguard_audit_records_total", []string{"server", placeholders}, 3},
		{"resetguard_audit_records_total", []string{"server", lookupP}, 3},
		{"resetguard_principal_cache_hits_total", []string{"server", lookupP}, 1},
		{"resetguard_principal_cache_misses_total", []string{"server", lookupP}, 1},
	}
	for _, tt := range tests {
		if d := delta(tt.family, tt.labels...); d < tt.min {
			t.Errorf("%s%v grew by %v, want >= %v", tt.family, tt.labels, d, tt.min)
		}
	}
	if d := delta("resetguard_principal_cache_hits_total", "server", lookupP) + delta("resetguard_principal_cache_misses_total", "server", lookupP); d != 3 {
		t.Errorf("principal cache hits+misses on %s grew by %v, want 3 (one per lookup)", lookupP, d)
	}
	if d := delta("resetguard_requests_total", "server", placeholders, "scheme", "soticket"); d != 0 {
		t.Errorf("%s counted %v of %s's requests", placeholders, d, lookupP)
	}
	// Exported at 0 from provisioning on, so that an alert on its rate
	// sees the first error.
	if sumSeries(after, "resetguard_audit_write_errors_total", "server", placeholders) < 0 {
		t.Errorf("resetguard_audit_write_errors_total{server=%q} not exported", placeholders)
	}
	// Every active revision is exported as an info series.
	for _, h := range getStatus(t).Handlers {
		if v := sumSeries(after, "resetguard_policy_revision_info", "revision", h.Policy.Revision); v < 1 {
			t.Errorf("resetguard_policy_revision_info for %q = %v, want >= 1", h.Policy.Revision, v)
		}
		if h.Name == "placeholders" {
			if v := sumSeries(after, "resetguard_policy_revision_info", "server", placeholders, "revision", h.Policy.Revision); v != 1 {
				t.Errorf("resetguard_policy_revision_info{server=%q,revision=%q} = %v, want 1", placeholders, h.Policy.Revision, v)
			}
		}
	}
	// Every series carries both labels; the HELP texts name the values.
	for key := range after {
		if l := seriesLabels(key); strings.HasPrefix(key, "resetguard_") && (l["server"] == "" || l["handler"] != "reset_guard") {
			t.Errorf("%s: want a server label and handler=\"reset_guard\"", key)
		}
	}
	help := scrapeHelp(t)
	for family, words := range map[string][]string{
		"resetguard_requests_total":            {"server", "rest", "agents", "soap", "allowed", "denied", "success", "failure", "unknown", "none"},
		"resetguard_upstream_duration_seconds": {"server", "rest", "agents", "soap"},
		"resetguard_decision_duration_seconds": {"server", "allow", "deny", "dry_run", "error", "refused"},
	} {
		for _, w := range words {
			if !strings.Contains(help[family], w) {
				t.Errorf("HELP %s %q does not name %q", family, help[family], w)
			}
		}
	}
}

// serverOf is the name Caddy gave the server of site (a URL from
// caddyfile_test.go), from the admin API's view of the config: the name
// Caddy's own caddy_http_* series carry.
func serverOf(t *testing.T, site string) string {
	t.Helper()
	port := site[strings.LastIndexByte(site, ':'):]
	resp, err := client.Get(adminURL + "/config/apps/http/servers")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var servers map[string]struct{ Listen []string }
	if err := json.NewDecoder(resp.Body).Decode(&servers); err != nil {
		t.Fatal(err)
	}
	for name, srv := range servers {
		for _, l := range srv.Listen {
			if strings.HasSuffix(l, port) {
				return name
			}
		}
	}
	t.Fatalf("no server listens on %s", port)
	return ""
}

// seriesLabels are the labels of a key of scrape's map.
func seriesLabels(key string) map[string]string {
	out := map[string]string{}
	if i := strings.IndexByte(key, '{'); i >= 0 {
		for _, m := range labelPair.FindAllStringSubmatch(key[i:], -1) {
			out[m[1]] = m[2]
		}
	}
	return out
}

var labelPair = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// sumSeries sums the samples of family whose labels include the given
// name-value pairs; -1 when there is none.
func sumSeries(samples map[string]float64, family string, labels ...string) float64 {
	sum, found := 0.0, false
	for key, v := range samples {
		if name, _, _ := strings.Cut(key, "{"); name != family {
			continue
		}
		l := seriesLabels(key)
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && l[labels[i]] == labels[i+1]
		}
		if match {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// scrapeHelp reads the HELP texts from Caddy's admin /metrics.
func scrapeHelp(t *testing.T) map[string]string {
	t.Helper()
	resp, err := client.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(body)) {
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, help, _ := strings.Cut(strings.TrimSpace(rest), " ")
			out[name] = help
		}
	}
	return out
}
