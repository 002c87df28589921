package resetguard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/resetguard/caddy-resetguard/audit"
)

// TestJSONConfigRoundTrip checks that every Caddyfile option has a JSON
// form that decodes back to the same handler.
func TestJSONConfigRoundTrip(t *testing.T) {
	var h Handler
	in := `reset_guard testdata/caddy {
		query data.resetguard.test.decision
		policy_timeout 50ms
		schemes soticket bearer
		realm r
		fingerprint_key k
		input_headers User-Agent
		max_request_body 1KiB
		max_response_body 1MiB
		dry_run
	}`
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	var back Handler
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, back) {
		t.Fatalf("JSON round trip changed the config:\n%s\n%+v", raw, back)
	}
}

func provisioned(t testing.TB, h *Handler) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	h.sink = audit.NewSink(zap.New(core))
	h.logger = zap.NewNop()
	return h, logs
}

func TestProvisionAndValidateErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.rego")
	if err := os.WriteFile(broken, []byte("package resetguard\n\nallow if {\n\tinput.x ==\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unsafe := filepath.Join(dir, "unsafe", "unsafe.rego")
	if err := os.MkdirAll(filepath.Dir(unsafe), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unsafe, []byte("package resetguard\n\nallow if {\n\tx == y\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		h       Handler
		wantErr []string
	}{
		{"rego syntax error names file and line", Handler{Policy: PolicyConfig{Paths: []string{broken}}}, []string{"broken.rego:", "5"}},
		{"rego compile error names file and line", Handler{Policy: PolicyConfig{Paths: []string{filepath.Dir(unsafe)}}}, []string{"unsafe.rego:4", "unsafe"}},
		{"no policy", Handler{}, []string{"no policy files or bundles configured"}},
		{"missing file", Handler{Policy: PolicyConfig{Paths: []string{filepath.Join(dir, "nope.rego")}}}, []string{"nope.rego"}},
		{"unknown scheme", Handler{Schemes: []string{"digest"}, Policy: PolicyConfig{Paths: []string{"testdata/caddy"}}}, []string{"unknown credential scheme"}},
		{"secret input header", Handler{InputHeaders: []string{"cookie"}, Policy: PolicyConfig{Paths: []string{"testdata/caddy"}}}, []string{"cookie carries a credential"}},
		{"bad query", Handler{Policy: PolicyConfig{Paths: []string{"testdata/caddy"}, Query: "data.x["}}, []string{"parsing query"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := tt.h.Provision(ctx)
			if err == nil {
				err = tt.h.Validate()
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

func (f handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// orderedWriter notes how many audit records existed when the first byte
// reached the client.
type orderedWriter struct {
	*httptest.ResponseRecorder
	logs          *observer.ObservedLogs
	recordsAtByte int
	wrote         bool
}

func (o *orderedWriter) note() {
	if !o.wrote {
		o.wrote = true
		o.recordsAtByte = o.logs.Len()
	}
}

func (o *orderedWriter) WriteHeader(s int) { o.note(); o.ResponseRecorder.WriteHeader(s) }

func (o *orderedWriter) Write(p []byte) (int, error) { o.note(); return o.ResponseRecorder.Write(p) }

func (o *orderedWriter) Flush() { o.note(); o.ResponseRecorder.Flush() }

func botRequest(t testing.TB) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	r.SetBasicAuth("bot", "pw")
	return r
}

// auditOrderCase is a next handler's way of answering, and the response
// and record the guard must make of it.
type auditOrderCase struct {
	name        string
	maxResponse int64
	next        handlerFunc
	wantStatus  int
	wantOutcome string
	wantReason  string
	wantBody    string
}

// TestAuditBeforeHeldResponse: a response held whole, or none at all,
// reaches the client only after its record.
func TestAuditBeforeHeldResponse(t *testing.T) {
	entity := entityFixture(t)
	runAuditOrderCases(t, []auditOrderCase{
		{
			name: "held response", wantStatus: 200, wantOutcome: "success", wantBody: string(entity),
			next: func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(entity[:10])
				http.NewResponseController(w).Flush() // must not release the held response
				_, _ = w.Write(entity[10:])
				return nil
			},
		},
		{
			name: "next handler writes nothing", wantStatus: 200, wantOutcome: "unknown", wantReason: "upstream_empty",
			next: func(http.ResponseWriter, *http.Request) error { return nil },
		},
		{
			// The backend may have received the request before it timed
			// out: unknown.
			name: "next handler fails with a status", wantStatus: 504, wantOutcome: "unknown", wantReason: "upstream_error",
			next: func(http.ResponseWriter, *http.Request) error {
				return caddyhttp.Error(http.StatusGatewayTimeout, fmt.Errorf("timeout"))
			},
		},
		{
			name: "next handler could not reach the backend", wantStatus: 502, wantOutcome: "failure", wantReason: "upstream_error",
			next: func(http.ResponseWriter, *http.Request) error { return dialRefused() },
		},
	})
}

// TestAuditBeforeStreamedResponse: a response too large to hold streams
// through, but its record is written before its first byte.
func TestAuditBeforeStreamedResponse(t *testing.T) {
	entity := entityFixture(t)
	runAuditOrderCases(t, []auditOrderCase{
		{
			name: "streamed response past the hold", maxResponse: 64, wantStatus: 200, wantOutcome: "unknown", wantReason: "entity_not_read", wantBody: string(entity),
			next: func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				for i := 0; i < len(entity); i += 50 {
					_, _ = w.Write(entity[i:min(i+50, len(entity))])
					_ = http.NewResponseController(w).Flush()
				}
				return nil
			},
		},
		{
			name: "declared length past the hold streams at once", maxResponse: 64, wantStatus: 201, wantOutcome: "unknown", wantReason: "entity_not_read", wantBody: string(entity),
			next: func(w http.ResponseWriter, _ *http.Request) error {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Length", fmt.Sprint(len(entity)))
				w.WriteHeader(201)
				_, _ = io.Copy(w, bytes.NewReader(entity)) // through ReadFrom
				return nil
			},
		},
	})
}

func runAuditOrderCases(t *testing.T, cases []auditOrderCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy(), MaxResponseBody: tt.maxResponse})
			w := &orderedWriter{ResponseRecorder: httptest.NewRecorder(), logs: logs}
			if err := h.ServeHTTP(w, botRequest(t), tt.next); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tt.wantStatus)
			}
			_, ev := soleRecord(t, logs)
			if w.recordsAtByte != 1 {
				t.Errorf("response reached the client before its audit record")
			}
			if tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Errorf("client body differs from the upstream's")
			}
			if ev["outcome"] != tt.wantOutcome || fmt.Sprint(ev["reason"]) != fmt.Sprint(tt.wantReason) && tt.wantReason != "" {
				t.Errorf("event = %v, want outcome %s reason %s", ev, tt.wantOutcome, tt.wantReason)
			}
		})
	}
}

// TestPanicIsAuditedOnce: a panic is recorded once and goes on to
// Caddy's recovery; before forwarding it is a failure, after forwarding
// the backend may have acted on the reset: unknown.
func TestPanicIsAuditedOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		breakSteps  bool // a step before forwarding panics
		wantOutcome string
		wantType    string
	}{
		{name: "before forwarding", breakSteps: true, wantOutcome: "failure", wantType: "denied"},
		{name: "after forwarding", wantOutcome: "unknown", wantType: "allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy()})
			if tc.breakSteps {
				h.id = nil // identify dereferences it
			}
			forwarded := false
			func() {
				defer func() {
					if recover() == nil {
						t.Error("the panic must propagate to Caddy's recovery")
					}
				}()
				_ = h.ServeHTTP(httptest.NewRecorder(), botRequest(t), handlerFunc(func(http.ResponseWriter, *http.Request) error {
					forwarded = true
					panic("upstream exploded")
				}))
			}()
			if forwarded == tc.breakSteps {
				t.Errorf("forwarded = %v", forwarded)
			}
			_, ev := soleRecord(t, logs)
			checkEvent(t, ev, "panic", tc.wantOutcome, tc.wantType)
		})
	}
}

func TestPassThroughIsUntouched(t *testing.T) {
	h, logs := provisioned(t, &Handler{Policy: testPolicy()})
	r := httptest.NewRequest(http.MethodGet, "/api/v1/ChatSession/427", nil)
	var seenW http.ResponseWriter
	var seenR *http.Request
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seenW, seenR = w, r
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if seenW != w || seenR != r {
		t.Error("a non-reset request must reach the next handler with the same writer and request")
	}
	if logs.Len() != 0 {
		t.Errorf("pass-through wrote %d audit records", logs.Len())
	}
	allocs := testing.AllocsPerRun(100, func() {
		_ = h.ServeHTTP(w, r, handlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
	})
	if allocs != 0 {
		t.Errorf("pass-through allocates %v times per request, want 0", allocs)
	}
}

func BenchmarkServeHTTPPassThrough(b *testing.B) {
	h, _ := provisioned(b, &Handler{Policy: testPolicy()})
	r := httptest.NewRequest(http.MethodGet, "/SuperOffice/api/v1/Contact/5", nil)
	w := httptest.NewRecorder()
	next := handlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	b.ReportAllocs()
	for b.Loop() {
		_ = h.ServeHTTP(w, r, next)
	}
}

// BenchmarkServeHTTPGuardedReset measures the guard's own cost on a
// reset: classification, credential, fingerprint, policy evaluation and
// the audit record (to a JSON encoder writing nowhere), and on an allowed
// one also the response hold and entity decoding, with a next handler that
// answers at once.
func BenchmarkServeHTTPGuardedReset(b *testing.B) {
	entity := entityFixture(b)
	h, _ := provisioned(b, &Handler{Policy: benchPolicy()})
	h.sink = audit.NewSink(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(discard{}), zapcore.InfoLevel)))
	next := handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(entity)
		return nil
	})
	for _, bc := range []struct {
		name, user string
		want       int
	}{
		{"allow", "chatbot", http.StatusOK},
		{"deny", "agent7", http.StatusForbidden},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
				r.SetBasicAuth(bc.user, "pw")
				w := httptest.NewRecorder()
				_ = h.ServeHTTP(w, r, next)
				if w.Code != bc.want {
					b.Fatalf("status %d, want %d: %s", w.Code, bc.want, w.Body)
				}
			}
		})
	}
}

// benchPolicy is the example policy with a generous evaluation timeout,
// so that a descheduled request on a busy machine does not turn into a
// policy error and end the benchmark; the policy itself takes
// microseconds.
func benchPolicy() PolicyConfig {
	return PolicyConfig{Paths: []string{"testdata/policies/handoff"}, Query: "data.resetguard.handoff.decision",
		Timeout: caddy.Duration(maxPolicyTimeout)}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestClientGoneBeforePolicyIsAuditedNotForwarded(t *testing.T) {
	h, logs := provisioned(t, &Handler{Policy: testPolicy()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, botRequest(t).WithContext(ctx), handlerFunc(func(http.ResponseWriter, *http.Request) error {
		called = true
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if called {
		t.Error("a request whose client left must not be forwarded")
	}
	// Refused before forwarding: the backend never saw it, a failure.
	_, ev := soleRecord(t, logs)
	checkEvent(t, ev, "client_gone", "failure", "denied")
	if w.Code != statusClientClosed {
		t.Errorf("status %d, want %d", w.Code, statusClientClosed)
	}
}
