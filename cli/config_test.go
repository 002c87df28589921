package cli_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/cli"
	"github.com/resetguard/caddy-resetguard/policy"
)

// TestDecodeHandlerThroughRegistry decodes handler objects the way Caddy
// does, through the registered module, and checks that what the handler
// tells the policy commands is its own policy config: every local source,
// the query, the timeout, the remote bundle service.
func TestDecodeHandlerThroughRegistry(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    policy.Config
		remote  string
		wantErr string
	}{
		{
			name: "local sources, query and timeout",
			raw: `{"handler": "reset_guard", "policy": {"paths": ["a.rego", "data"], "bundles": ["b.tar.gz"],
				"query": "data.x.decision", "timeout": "250ms"}}`,
			want: policy.Config{Paths: []string{"a.rego", "data"}, Bundles: []string{"b.tar.gz"}, Query: "data.x.decision", Timeout: 250 * time.Millisecond},
		},
		{
			name:   "remote bundle service",
			raw:    `{"handler": "reset_guard", "policy": {"remote": {"url": "https://bundles.example", "resource": "rg.tar.gz"}}}`,
			remote: "https://bundles.example",
		},
		{
			name: "no policy at all",
			raw:  `{"handler": "reset_guard"}`,
		},
		{
			name:    "unknown option, refused as Caddy would",
			raw:     `{"handler": "reset_guard", "policy": {"paths": ["a.rego"], "qurey": "data.x"}}`,
			wantErr: "qurey",
		},
		{
			name:    "not an object",
			raw:     `["reset_guard"]`,
			wantErr: "cannot unmarshal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := cli.DecodeHandler([]byte(tt.raw))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := src.PolicySource(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PolicySource() = %+v, want %+v", got, tt.want)
			}
			if got := src.RemoteBundleURL(); got != tt.remote {
				t.Errorf("RemoteBundleURL() = %q, want %q", got, tt.remote)
			}
		})
	}
}
