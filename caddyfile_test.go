package resetguard

import (
	"strings"
	"testing"

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
