package resetguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// boundCase is one config written in both forms, and what Validate says
// about it.
type boundCase struct {
	name string
	// json is the handler's JSON config, as a Caddy config or an admin
	// API /load carries it.
	json string
	// caddyfile is the body of a reset_guard block holding the same
	// config.
	caddyfile string
	// jsonOnly says why no Caddyfile writes this config; the case then
	// has no Caddyfile form.
	jsonOnly string
	// want is Validate's exact error; "" for a config inside every bound.
	want string
}

// TestConfigBounds holds every bound in both config forms: the JSON
// config decoded as Caddy decodes it, and the Caddyfile parsed by
// UnmarshalCaddyfile, are the same config and get the same answer from
// Validate, word for word; so does the JSON the Caddyfile adapts to.
func TestConfigBounds(t *testing.T) {
	tables := []struct {
		group string
		cases []boundCase
	}{
		{"handler", handlerBounds},
		{"policy", policyBounds},
		{"session", sessionLookupBounds},
		{"jwt", jwtBounds},
		{"lookup", principalLookupBounds},
		{"audit", auditBounds},
		{"combined", combinedBounds},
	}
	for _, table := range tables {
		for _, tc := range table.cases {
			t.Run(table.group+"/"+tc.name, func(t *testing.T) {
				fromJSON := decodeJSON(t, tc.json)
				expectValidate(t, "JSON", fromJSON, tc.want)
				if tc.jsonOnly != "" {
					return
				}
				fromCaddyfile := caddyfileHandler(t, tc.caddyfile)
				if a, b := encode(t, fromCaddyfile), encode(t, fromJSON); a != b {
					t.Fatalf("the two forms differ:\nCaddyfile %s\nJSON      %s", a, b)
				}
				expectValidate(t, "Caddyfile", fromCaddyfile, tc.want)
				expectValidate(t, "adapted Caddyfile", decodeJSON(t, encode(t, fromCaddyfile)), tc.want)
			})
		}
	}
}

func decodeJSON(t *testing.T, raw string) *Handler {
	t.Helper()
	h := new(Handler)
	if err := caddy.StrictUnmarshalJSON([]byte(raw), h); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return h
}

func caddyfileHandler(t *testing.T, body string) *Handler {
	t.Helper()
	h := new(Handler)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("reset_guard {\n" + body + "\n}")); err != nil {
		t.Fatalf("parsing %q: %v", body, err)
	}
	return h
}

func encode(t *testing.T, h *Handler) string {
	t.Helper()
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func expectValidate(t *testing.T, form string, h *Handler, want string) {
	t.Helper()
	err := h.Validate()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: Validate() = %v, want the config accepted", form, err)
	case want != "" && err == nil:
		t.Errorf("%s: Validate() accepted the config, want %q", form, want)
	case want != "" && err.Error() != want:
		t.Errorf("%s: Validate() = %q\nwant             %q", form, err, want)
	}
}

var handlerBounds = []boundCase{
	{name: "every field at its default", json: `{}`, caddyfile: ``},
	{name: "request body negative", json: `{"max_request_body": -1}`, caddyfile: `max_request_body -1`,
		want: "reset_guard: max_request_body -1B: want a size in [1B, 1GiB]"},
	{name: "request body past 1GiB", json: `{"max_request_body": 1073741825}`, caddyfile: `max_request_body 1073741825`,
		want: "reset_guard: max_request_body 1073741825B: want a size in [1B, 1GiB]"},
	{name: "request body 1B", json: `{"max_request_body": 1}`, caddyfile: `max_request_body 1B`},
	{name: "request body 1GiB", json: `{"max_request_body": 1073741824}`, caddyfile: `max_request_body 1GiB`},
	{name: "response body negative", json: `{"max_response_body": -1024}`, caddyfile: `max_response_body -1KiB`,
		want: "reset_guard: max_response_body -1KiB: want a size in [1B, 1GiB]"},
	{name: "response body past 1GiB", json: `{"max_response_body": 2147483648}`, caddyfile: `max_response_body 2GiB`,
		want: "reset_guard: max_response_body 2GiB: want a size in [1B, 1GiB]"},
	{name: "response body 1GiB", json: `{"max_response_body": 1073741824}`, caddyfile: `max_response_body 1GiB`},
	{name: "body timeout negative", json: `{"request_body_timeout": "-1s"}`, caddyfile: `request_body_timeout -1s`,
		want: "reset_guard: request_body_timeout -1s: want a duration in (0, 10m]"},
	{name: "body timeout past 10m", json: `{"request_body_timeout": "10m1s"}`, caddyfile: `request_body_timeout 10m1s`,
		want: "reset_guard: request_body_timeout 10m1s: want a duration in (0, 10m]"},
	{name: "body timeout 10m", json: `{"request_body_timeout": "10m"}`, caddyfile: `request_body_timeout 10m`},
	{name: "body timeout 1ns", json: `{"request_body_timeout": "1ns"}`, caddyfile: `request_body_timeout 1ns`},
	{name: "errors mode unknown", json: `{"errors": "html"}`, caddyfile: `errors html`,
		want: `reset_guard: errors "html": want superoffice or handle_errors`},
	{name: "errors mode handle_errors", json: `{"errors": "handle_errors"}`, caddyfile: `errors handle_errors`},
	{name: "scheme unknown", json: `{"schemes": ["basic", "digest"]}`, caddyfile: `schemes basic digest`,
		want: `reset_guard: schemes: unknown credential scheme "digest" (want basic, soticket, bearer or xsrf)`},
	{name: "schemes in any case", json: `{"schemes": ["BASIC", "SoTicket"]}`, caddyfile: `schemes BASIC SoTicket`},
	{name: "credential input header", json: `{"input_headers": ["User-Agent", "Cookie"]}`, caddyfile: `input_headers User-Agent Cookie`,
		want: "reset_guard: input_headers: Cookie carries a credential and may not reach the policy"},
}

var policyBounds = []boundCase{
	{name: "timeout negative", json: `{"policy": {"timeout": "-1s"}}`, caddyfile: `policy_timeout -1s`,
		want: "reset_guard: policy.timeout -1s: want a duration in (0, 1m]"},
	{name: "timeout past 1m", json: `{"policy": {"timeout": "2m"}}`, caddyfile: "policy {\ntimeout 2m\n}",
		want: "reset_guard: policy.timeout 2m: want a duration in (0, 1m]"},
	{name: "timeout 1m", json: `{"policy": {"timeout": "1m"}}`, caddyfile: `policy_timeout 1m`},
	{name: "timeout 1ns", json: `{"policy": {"timeout": "1ns"}}`, caddyfile: `policy_timeout 1ns`},
	{name: "error status 4xx", json: `{"policy": {"error_status": 403}}`, caddyfile: `policy_error_status 403`,
		want: "reset_guard: policy.error_status 403: want a 5xx status: a policy failure is not the client's fault"},
	{name: "error status 499", json: `{"policy": {"error_status": 499}}`, caddyfile: "policy {\nerror_status 499\n}",
		want: "reset_guard: policy.error_status 499: want a 5xx status: a policy failure is not the client's fault"},
	{name: "error status 600", json: `{"policy": {"error_status": 600}}`, caddyfile: `policy_error_status 600`,
		want: "reset_guard: policy.error_status 600: want a 5xx status: a policy failure is not the client's fault"},
	{name: "error status 500", json: `{"policy": {"error_status": 500}}`, caddyfile: `policy_error_status 500`},
	{name: "error status 599", json: `{"policy": {"error_status": 599}}`, caddyfile: `policy_error_status 599`},
	{name: "remote without url", json: `{"policy": {"remote": {"url": "", "resource": "b.tar.gz"}}}`,
		caddyfile: "policy {\nremote \"\" b.tar.gz\n}", want: "reset_guard: policy.remote.url: required"},
	{name: "remote without resource", json: `{"policy": {"remote": {"url": "https://b.test", "resource": ""}}}`,
		caddyfile: "policy {\nremote https://b.test \"\"\n}", want: "reset_guard: policy.remote.resource: required"},
	{name: "polling under 1s", json: remoteJSON(`"min_delay": "500ms", "max_delay": "1m"`), caddyfile: remoteCaddyfile("polling 500ms 1m"),
		want: "reset_guard: policy.remote.min_delay 500ms: want a duration of at least 1s"},
	{name: "polling max negative", json: remoteJSON(`"min_delay": "1s", "max_delay": "-1s"`), caddyfile: remoteCaddyfile("polling 1s -1s"),
		want: "reset_guard: policy.remote.max_delay -1s: want a duration of at least 1s"},
	{name: "polling max under min", json: remoteJSON(`"min_delay": "30s", "max_delay": "5s"`), caddyfile: remoteCaddyfile("polling 30s 5s"),
		want: "reset_guard: policy.remote.max_delay 5s: want at least min_delay (30s)"},
	{name: "polling 1s 1s", json: remoteJSON(`"min_delay": "1s", "max_delay": "1s"`), caddyfile: remoteCaddyfile("polling 1s 1s")},
	{name: "polling min alone past the default max", json: remoteJSON(`"min_delay": "90s"`), jsonOnly: "polling sets both delays"},
	{name: "polling min alone under 1s", json: remoteJSON(`"min_delay": "1ms"`), jsonOnly: "polling sets both delays",
		want: "reset_guard: policy.remote.min_delay 1ms: want a duration of at least 1s"},
	{name: "wait negative", json: remoteJSON(`"wait": "-1s"`), caddyfile: remoteCaddyfile("wait -1s"),
		want: "reset_guard: policy.remote.wait -1s: want a positive duration"},
	{name: "wait 0: the default", json: remoteJSON(`"wait": "0s"`), caddyfile: remoteCaddyfile("wait 0s")},
}

func remoteJSON(fields string) string {
	return `{"policy": {"remote": {"url": "https://b.test", "resource": "b.tar.gz", ` + fields + `}}}`
}

func remoteCaddyfile(option string) string {
	return "policy {\nremote https://b.test b.tar.gz {\n" + option + "\n}\n}"
}

var sessionLookupBounds = []boundCase{
	{name: "upstream not http", json: `{"session_lookup": {"upstream": "ftp://backend"}}`, caddyfile: `session_lookup ftp://backend`,
		want: `reset_guard: session_lookup.upstream "ftp://backend": want an http(s) URL`},
	{name: "upstream without scheme", json: `{"session_lookup": {"upstream": "127.0.0.1:8081"}}`, caddyfile: `session_lookup 127.0.0.1:8081`,
		want: `reset_guard: session_lookup.upstream "127.0.0.1:8081": want an http(s) URL`},
	{name: "upstream missing", json: `{"session_lookup": {}}`, caddyfile: `session_lookup ""`,
		want: `reset_guard: session_lookup.upstream "": want an http(s) URL`},
	{name: "timeout negative", json: `{"session_lookup": {"upstream": "http://b.test", "timeout": "-1s"}}`,
		caddyfile: "session_lookup http://b.test {\ntimeout -1s\n}", want: "reset_guard: session_lookup.timeout -1s: want a positive duration"},
	{name: "timeout 1ns", json: `{"session_lookup": {"upstream": "https://b.test", "timeout": "1ns"}}`,
		caddyfile: "session_lookup https://b.test {\ntimeout 1ns\n}"},
}

// TestProvisionValidatesAsWritten: Caddy calls Provision before Validate,
// and Provision fills in defaults, so Provision must check the config as
// written: a negative size is refused, not replaced by the default, and
// nothing (here: the audit file) is opened for a refused config. A config
// at its defaults passes Caddy's own Validate call after Provision.
func TestProvisionValidatesAsWritten(t *testing.T) {
	tests := []struct {
		name        string
		json        string
		want        string
		wantRequest int64 // MaxRequestBody after Provision
	}{
		{name: "negative size refused", json: `"max_request_body": -1`, wantRequest: -1,
			want: "reset_guard: max_request_body -1B: want a size in [1B, 1GiB]"},
		{name: "zero size takes the default", json: `"max_request_body": 0`, wantRequest: DefaultMaxRequestBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auditPath := filepath.Join(t.TempDir(), "audit.log")
			h := decodeJSON(t, fmt.Sprintf(`{"policy": {"paths": ["testdata/caddy"]}, "audit": {"file": {"path": %q}}, %s}`, auditPath, tt.json))
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if err == nil {
				defer func() {
					if err := h.Cleanup(); err != nil {
						t.Error(err)
					}
				}()
				err = h.Validate()
			}
			if got := fmt.Sprint(err); (err == nil) != (tt.want == "") || (err != nil && got != tt.want) {
				t.Fatalf("Provision, Validate = %v; want %q", err, tt.want)
			}
			if h.MaxRequestBody != tt.wantRequest {
				t.Errorf("max_request_body after Provision = %d, want %d", h.MaxRequestBody, tt.wantRequest)
			}
			_, statErr := os.Stat(auditPath)
			if opened := !errors.Is(statErr, fs.ErrNotExist); opened != (tt.want == "") {
				t.Errorf("audit file opened = %v (stat: %v); want it opened only for an accepted config", opened, statErr)
			}
		})
	}
}
