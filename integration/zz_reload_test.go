package integration_test

// A config reload re-provisions every site of the shared gateway: fresh
// principal caches, per-handler counters and JWKS, and the bundle-fed
// sites start over from whatever the bundle service serves at that moment
// (after TestBundleHotSwap, a bundle that does not compile, which leaves
// them without a policy). Suites that assert on that state must not run
// after it. Go runs a package's tests
// file by file in name order, so this file's name keeps it last.

import (
	"net/http"
	"strings"
	"testing"
)

// TestConfigReloadRereadsPolicy: a Caddy config reload reads the policy
// files again.
func TestConfigReloadRereadsPolicy(t *testing.T) {
	g := startGateway(t)
	send := func() (int, string) {
		resp, body := post(t, reloadURL, restReset, basic("bot", "hunter2"), nil)
		return resp.StatusCode, firstReason(body)
	}
	g.newAuditLines(t)
	if code, _ := send(); code != http.StatusOK {
		t.Fatalf("before the reload: %d, want 200", code)
	}
	before := field(g.newAuditLines(t)[0], "resetguard.decision.policy_revision")

	writeReloadPolicy(t, g.reloadDir, "reload-v2", false)
	if code, _ := send(); code != http.StatusOK {
		t.Fatal("a changed file must not change the policy before a reload")
	}
	g.newAuditLines(t)

	req, err := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(g.config))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate") // reload even though the config text is unchanged
	resp, body := doRequest(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if code, reason := send(); code != http.StatusForbidden || reason != "reload-v2" {
		t.Fatalf("after the reload: %d %q, want 403 reload-v2", code, reason)
	}
	recs := g.newAuditLines(t)
	if len(recs) != 1 {
		t.Fatalf("%d audit records, want 1", len(recs))
	}
	if after := field(recs[0], "resetguard.decision.policy_revision"); after == before || after == nil {
		t.Fatalf("policy revision %v after the reload, was %v: want a new one", after, before)
	}
}
