package resetguard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/resetguard/caddy-resetguard/internal/bundletest"
)

// Issue 16, the policies the handler refuses at load: what would reach
// the network, decide at random, read an OPA server's environment, or let
// a bundle (or a tarball among the files) change what the files decide.
// A refused policy fails Provision, so the config is not loaded; a bundle
// service's bundle so refused leaves the previous policy active
// (policy/manager_strict_test.go).

// refusedPolicy is testdata/strict/refused/<file>, query
// data.strict.refused.decision.
func refusedPolicy(file string) PolicyConfig {
	return PolicyConfig{Paths: []string{"testdata/strict/refused/" + file}, Query: "data.strict.refused.decision"}
}

// bundledPolicy is testdata/strict/bundles/files beside the named bundle
// fixtures.
func bundledPolicy(bundles ...string) PolicyConfig {
	p := PolicyConfig{Paths: []string{"testdata/strict/bundles/files"}, Query: "data.strict.bundled.decision"}
	for _, b := range bundles {
		p.Bundles = append(p.Bundles, "testdata/strict/bundles/"+b)
	}
	return p
}

func TestStrictRefusedAtLoad(t *testing.T) {
	withNetwork := func(p PolicyConfig) PolicyConfig { p.AllowNetworkBuiltins = true; return p }
	tests := []struct {
		name    string
		policy  PolicyConfig
		wantErr []string
	}{
		{"http.send", refusedPolicy("http_send.rego"), []string{"http_send.rego:3", "http.send", "policy.allow_network_builtins"}},
		{"net.lookup_ip_addr", refusedPolicy("lookup_ip.rego"), []string{"lookup_ip.rego:3", "net.lookup_ip_addr", "policy.allow_network_builtins"}},
		{"http.send mocked with `with`", refusedPolicy("mock_http_send.rego"), []string{"mock_http_send.rego:9", "http.send"}},
		{"rand.intn", refusedPolicy("rand.rego"), []string{"rand.rego:3", "rand.intn", "never allowed"}},
		{"rand.intn, network allowed", withNetwork(refusedPolicy("rand.rego")), []string{"rand.rego:3", "rand.intn", "never allowed"}},
		{"uuid.rfc4122", refusedPolicy("uuid.rego"), []string{"uuid.rego:3", "uuid.rfc4122"}},
		{"opa.runtime", withNetwork(refusedPolicy("runtime.rego")), []string{"runtime.rego:3", "opa.runtime"}},
		{"query with `with`", PolicyConfig{Paths: []string{"testdata/strict/shapes"}, Query: "data.strict.shapes.allow_string with input as {}"},
			[]string{"must be a plain reference into data"}},
		{"decision from a data document", PolicyConfig{Paths: []string{"testdata/strict/datadecision"}, Query: "data.strict.datadecision"},
			[]string{"data documents hold a value at data.strict.datadecision"}},
		{"bundle without roots beside files", bundledPolicy("rootless"), []string{"claims all of data", "data.strict.bundled"}},
		{"bundle rooted in the files' package", bundledPolicy("same_package"), []string{"claims data.strict.bundled", "files/policy.rego"}},
		{"bundle rooted over the files' data", bundledPolicy("data_shadow"), []string{"claims data.strict_bots", "data documents"}},
		{"bundle with Wasm", PolicyConfig{Bundles: []string{"testdata/strict/bundles/wasm"}, Query: "data.strict.wasm.decision"}, []string{"Wasm"}},
		{"delta bundle", bundledPolicy("delta"), []string{"delta bundle"}},
		{"bundle tarball inside the policy directory", PolicyConfig{Paths: []string{strayTarball(t)}, Query: "data.strict.bundled.decision"},
			[]string{"stale.tar.gz", "policy.bundles"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := &Handler{Policy: tt.policy}
			err := h.Provision(ctx)
			if err == nil {
				_ = h.Cleanup()
				t.Fatal("provisioned; want the policy refused at load")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

// strayTarball is a copy of testdata/strict/bundles/files with a bundle
// tarball left beside it, as `opa build` in the policy directory would,
// whose rule would allow every caller.
func strayTarball(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"policy.rego", "data.json"} {
		b, err := os.ReadFile(filepath.Join("testdata/strict/bundles/files", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tarball, err := bundletest.Build("stale", []string{"strict"}, map[string]string{
		"strict/bundled/allow.rego": "package strict.bundled\n\ndecision := {\"allow\": true, \"reasons\": [\"stale\"]} if input.credential.username == \"mallory\"\n",
	}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stale.tar.gz"), tarball, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStrictBundles: a bundle whose roots leave the files alone adds to
// them, and a bundle's *_test.rego modules are left out as the files'
// are.
func TestStrictBundles(t *testing.T) {
	disjoint := bundledPolicy("disjoint")
	inBundle := PolicyConfig{Bundles: []string{"testdata/strict/bundles/tests_inside"}, Query: "data.strict.inbundle.decision"}
	runStrictCases(t, []strictCase{
		{name: "files alone: listed bot", policy: bundledPolicy(), status: 200, reasons: []string{"listed_bot"}, decision: "allow"},
		{name: "disjoint bundle: listed bot", policy: disjoint, status: 200, reasons: []string{"listed_bot"}, decision: "allow"},
		{name: "disjoint bundle: other caller", policy: disjoint, user: "mallory",
			status: 403, reasons: []string{"not_a_listed_bot"}, decision: "deny"},
		{name: "test module in a bundle is not loaded", policy: inBundle,
			status: 403, reasons: []string{"denied_by_default"}, decision: "deny"},
	})
}

// TestStrictNetworkBuiltins: with allow_network_builtins, http.send
// decides with the service's answer, and a slow, failing or unreachable
// service is an evaluation error under the policy timeout, never an
// allow.
func TestStrictNetworkBuiltins(t *testing.T) {
	service := func(status int, delay time.Duration) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	network := func(url string, timeout time.Duration) PolicyConfig {
		dir := t.TempDir()
		data, err := json.Marshal(map[string]any{"strict_network": map[string]any{"url": url}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return PolicyConfig{Paths: []string{"testdata/strict/network", dir}, Query: "data.strict.network.decision",
			AllowNetworkBuiltins: true, Timeout: caddy.Duration(timeout)}
	}
	runStrictCases(t, []strictCase{
		{name: "service says yes", policy: network(service(200, 0), 5*time.Second),
			status: 200, reasons: []string{"service_says_yes"}, decision: "allow"},
		{name: "service says no", policy: network(service(403, 0), 5*time.Second),
			status: 403, reasons: []string{"service_says_no"}, decision: "deny"},
		{name: "service slower than the policy timeout", policy: network(service(200, 2*time.Second), 50*time.Millisecond),
			status: 503, reasons: refusedPolicyError, decision: "error"},
		{name: "service unreachable", policy: network(closed.URL, 5*time.Second),
			status: 503, reasons: refusedPolicyError, decision: "error"},
	})
}

// TestStrictCaddyfileNetworkOption: the Caddyfile option is the JSON
// field.
func TestStrictCaddyfileNetworkOption(t *testing.T) {
	var h Handler
	in := `reset_guard {
		policy testdata/strict/network {
			allow_network_builtins
		}
	}`
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(h.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Policy.AllowNetworkBuiltins || !strings.Contains(string(raw), `"allow_network_builtins":true`) {
		t.Fatalf("policy config %s: want allow_network_builtins set", raw)
	}
	if !h.PolicySource().AllowNetworkBuiltins {
		t.Fatal("the engine config (and so `policy eval`) does not get the option")
	}
}
