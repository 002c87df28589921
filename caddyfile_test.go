package resetguard

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestCaddyfileSyntax: the parser refuses what is not the Caddyfile's
// grammar (argument counts, unknown options, a value that is no duration,
// size or number at all) and nothing else; range problems are Validate's
// (TestConfigBounds).
func TestCaddyfileSyntax(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string
	}{
		{name: "size not a size", body: "max_request_body lots", wantErr: `max_request_body "lots": want a size such as 64KiB`},
		{name: "size past int64", body: "max_response_body 10EiB", wantErr: `max_response_body "10EiB": want a size such as 64KiB`},
		{name: "size without digits", body: "max_response_body -KiB", wantErr: `max_response_body "-KiB": want a size such as 64KiB`},
		{name: "duration not a duration", body: "request_body_timeout soon", wantErr: `request_body_timeout "soon": want a duration`},
		{name: "shorthand names the option written", body: "policy_timeout soon", wantErr: `policy_timeout "soon": want a duration`},
		{name: "number not a number", body: "policy_error_status five-oh-three", wantErr: `policy_error_status "five-oh-three": want a whole number`},
		{name: "polling not durations", body: "policy {\nremote https://b.test b {\npolling often 1m\n}\n}", wantErr: "polling often 1m: want two durations"},
		{name: "polling one argument", body: "policy {\nremote https://b.test b {\npolling 1m\n}\n}", wantErr: "wrong argument count"},
		{name: "remote one argument", body: "policy {\nremote https://b.test\n}", wantErr: "wrong argument count"},
		{name: "unknown remote option", body: "policy {\nremote https://b.test b {\nretry 3\n}\n}", wantErr: `unrecognized remote bundle option "retry"`},
		{name: "fsync duration after always", body: "audit {\nfile a.log {\nfsync always 1s\n}\n}", wantErr: "wrong argument count"},
		{name: "fsync without mode", body: "audit {\nfile a.log {\nfsync\n}\n}", wantErr: "wrong argument count"},
		{name: "fsync interval not a duration", body: "audit {\nfile a.log {\nfsync interval often\n}\n}", wantErr: `fsync interval "often": want a duration`},
		{name: "unknown audit file option", body: "audit {\nfile a.log {\nmode 0600\n}\n}", wantErr: `unrecognized audit file option "mode"`},
		{name: "audit with an argument", body: "audit a.log", wantErr: "wrong argument count"},
		{name: "unknown audit option", body: "audit {\nsyslog\n}", wantErr: `unrecognized audit option "syslog"`},
		{name: "customer field without treatment", body: "audit {\ncustomer_field CustomerEmail\n}", wantErr: "wrong argument count"},
		{name: "jwt with an argument", body: "identity {\njwt https://idp.test {\nissuer x\n}\n}", wantErr: "wrong argument count"},
		{name: "jwt number not a number", body: "identity {\njwt {\nmax_token_bytes 8k\n}\n}", wantErr: `max_token_bytes "8k": want a whole number`},
		{name: "jwt cache TTL not a duration", body: "identity {\njwt {\ncache_ttl never\n}\n}", wantErr: `cache_ttl "never": want a duration or off`},
		{name: "unknown principal lookup option", body: "identity {\nprincipal_lookup http://b.test {\nretries 2\n}\n}", wantErr: `unrecognized principal_lookup option "retries"`},
		{name: "unknown session lookup option", body: "session_lookup http://b.test {\nttl 1s\n}", wantErr: `unrecognized session_lookup option "ttl"`},
		{name: "session lookup without upstream", body: "session_lookup", wantErr: "wrong argument count"},
		{name: "input headers without names", body: "input_headers", wantErr: "wrong argument count"},
		{name: "bundle without paths", body: "policy {\nbundle\n}", wantErr: "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reset_guard {\n" + tt.body + "\n}"))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("UnmarshalCaddyfile = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestCaddyfileSizes: sizes take binary and decimal units and a sign, so
// that a negative size reaches Validate with the message JSON gets.
func TestCaddyfileSizes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"1", 1},
		{"64KiB", 64 << 10},
		{"1MB", 1000 * 1000},
		{"1GiB", 1 << 30},
		{"-1KiB", -1 << 10},
		{"0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reset_guard {\nmax_request_body " + tt.in + "\n}")); err != nil {
				t.Fatal(err)
			}
			if h.MaxRequestBody != tt.want {
				t.Fatalf("max_request_body %s = %d, want %d", tt.in, h.MaxRequestBody, tt.want)
			}
		})
	}
}

// caddyfileCase is a reset_guard block and the handler config it parses
// to, or the parse error it gives.
type caddyfileCase struct {
	name    string
	input   string
	want    Handler
	wantErr string
}

func runCaddyfileCases(t *testing.T, tests []caddyfileCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", h, tt.want)
			}
		})
	}
}

// TestUnmarshalCaddyfile: every option lands in its config field.
func TestUnmarshalCaddyfile(t *testing.T) {
	runCaddyfileCases(t, []caddyfileCase{
		{
			name:  "paths on the directive line",
			input: `reset_guard testdata/policies/handoff extra.rego`,
			want:  Handler{Policy: PolicyConfig{Paths: []string{"testdata/policies/handoff", "extra.rego"}}},
		},
		{
			name: "every option",
			input: `reset_guard {
				policy testdata/policies/handoff {
					paths more.rego
					query data.resetguard.handoff.decision
					timeout 250ms
					error_status 500
					dry_run
				}
				schemes basic xsrf
				realm "SuperOffice Online"
				fingerprint_key {env.RG_KEY}
				input_headers User-Agent X-Request-Id
				max_request_body 32KiB
				max_response_body 2MiB
				name tenant-a
				errors handle_errors
				request_body_timeout 3s
			}`,
			want: Handler{
				Policy: PolicyConfig{
					Paths:       []string{"testdata/policies/handoff", "more.rego"},
					Query:       "data.resetguard.handoff.decision",
					Timeout:     caddy.Duration(250 * time.Millisecond),
					ErrorStatus: 500,
					DryRun:      true,
				},
				Schemes:            []string{"basic", "xsrf"},
				Realm:              "SuperOffice Online",
				FingerprintKey:     "{env.RG_KEY}",
				InputHeaders:       []string{"User-Agent", "X-Request-Id"},
				MaxRequestBody:     32 << 10,
				MaxResponseBody:    2 << 20,
				Name:               "tenant-a",
				Errors:             ErrorsHandleErrors,
				RequestBodyTimeout: caddy.Duration(3 * time.Second),
			},
		},
		{
			name: "policy options at top level",
			input: `reset_guard p.rego {
				query data.x.allow
				policy_timeout 1s
				policy_error_status 502
				dry_run
			}`,
			want: Handler{Policy: PolicyConfig{Paths: []string{"p.rego"}, Query: "data.x.allow", Timeout: caddy.Duration(time.Second), ErrorStatus: 502, DryRun: true}},
		},
	})
}

// TestUnmarshalCaddyfileIdentity: the identity block's JWT and
// principal lookup options.
func TestUnmarshalCaddyfileIdentity(t *testing.T) {
	runCaddyfileCases(t, []caddyfileCase{
		{
			name: "identity",
			input: `reset_guard p.rego {
				identity {
					jwt {
						issuer https://idp.test
						audience a1 a2
						algorithms RS256 ES384
						leeway 10s
						jwks_url https://idp.test/jwks
						refresh 5m
						min_refresh 10s
						required_claims sub role
						max_token_bytes 4096
						cache_ttl 2m
						cache_max_entries 64
						subject_claim email
						associate_id_claim aid
						tenant_claim ctx
					}
					principal_lookup http://127.0.0.1:8081 {
						timeout 1s
						ttl 30s
						max_entries 500
					}
				}
			}`,
			want: Handler{Policy: PolicyConfig{Paths: []string{"p.rego"}}, Identity: &Identity{
				JWT: &JWTIdentity{Issuer: "https://idp.test", Audiences: []string{"a1", "a2"}, Algorithms: []string{"RS256", "ES384"},
					Leeway: caddy.Duration(10 * time.Second), JWKSURL: "https://idp.test/jwks", Refresh: caddy.Duration(5 * time.Minute),
					MinRefresh: caddy.Duration(10 * time.Second), RequiredClaims: []string{"sub", "role"}, MaxTokenBytes: 4096,
					CacheTTL: caddy.Duration(2 * time.Minute), CacheMaxEntries: 64,
					SubjectClaim: "email", AssociateIDClaim: "aid", TenantClaim: "ctx"},
				PrincipalLookup: &PrincipalLookupIdentity{Upstream: "http://127.0.0.1:8081", Timeout: caddy.Duration(time.Second),
					TTL: caddy.Duration(30 * time.Second), MaxEntries: 500},
			}},
		},
	})
}

// TestUnmarshalCaddyfileErrors: what is not the grammar is refused at
// parse time, naming the option.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	runCaddyfileCases(t, []caddyfileCase{
		{name: "unknown jwt option", input: "reset_guard {\n identity {\n jwt {\n bogus x\n }\n }\n}", wantErr: `unrecognized jwt option "bogus"`},
		{name: "unknown identity option", input: "reset_guard {\n identity {\n bogus\n }\n}", wantErr: `unrecognized identity option "bogus"`},
		{name: "principal lookup without upstream", input: "reset_guard {\n identity {\n principal_lookup\n }\n}", wantErr: "wrong argument count"},
		{name: "unknown option", input: "reset_guard {\n bogus 1\n}", wantErr: `unrecognized reset_guard option "bogus"`},
		{name: "unknown policy option", input: "reset_guard {\n policy p {\n bogus\n }\n}", wantErr: `unrecognized policy option "bogus"`},
		{name: "timeout not a duration", input: "reset_guard {\n policy_timeout soon\n}", wantErr: "want a duration"},
		{name: "size not a size", input: "reset_guard {\n max_request_body lots\n}", wantErr: "want a size"},
		{name: "body timeout not a duration", input: "reset_guard {\n request_body_timeout never\n}", wantErr: "want a duration"},
		{name: "schemes without args", input: "reset_guard {\n schemes\n}", wantErr: "wrong argument count"},
		{name: "dry_run with arg", input: "reset_guard {\n dry_run yes\n}", wantErr: "wrong argument count"},
		{name: "name without arg", input: "reset_guard {\n name\n}", wantErr: "wrong argument count"},
	})
}
