package resetguard

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/server"

	"github.com/resetguard/caddy-resetguard/policy"
)

func TestDecisionLogsCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`reset_guard {
		policy p.rego {
			decision_logs http://127.0.0.1:9999 {
				min_delay 1s
				max_delay 2s
				buffer_size_limit 1MiB
				header Authorization "Bearer {env.DL_TOKEN}"
			}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	dl := h.Policy.DecisionLogs
	if dl == nil || dl.URL != "http://127.0.0.1:9999" || dl.MinDelay != caddy.Duration(time.Second) ||
		dl.MaxDelay != caddy.Duration(2*time.Second) || dl.BufferSizeLimit != 1<<20 ||
		dl.Headers["Authorization"] != "Bearer {env.DL_TOKEN}" {
		t.Fatalf("parsed %+v", dl)
	}
}

func TestDecisionLogsValidate(t *testing.T) {
	for _, tt := range []struct {
		cfg  DecisionLogConfig
		want string // "" valid
	}{
		{DecisionLogConfig{URL: "http://127.0.0.1:1"}, ""},
		{DecisionLogConfig{}, "policy.decision_logs.url"},
		{DecisionLogConfig{URL: "ftp://x"}, "policy.decision_logs.url"},
		{DecisionLogConfig{URL: "http://x", MinDelay: caddy.Duration(time.Millisecond)}, "policy.decision_logs.min_delay"},
		{DecisionLogConfig{URL: "http://x", MinDelay: caddy.Duration(5 * time.Second), MaxDelay: caddy.Duration(2 * time.Second)}, "policy.decision_logs.max_delay"},
		{DecisionLogConfig{URL: "http://x", BufferSizeLimit: -1}, "policy.decision_logs.buffer_size_limit"},
	} {
		err := tt.cfg.validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: err %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if err := (*DecisionLogConfig)(nil).validate(); err != nil {
		t.Error(err)
	}
}

func TestDecisionLogsOPAConfig(t *testing.T) {
	raw, err := (&DecisionLogConfig{URL: "http://127.0.0.1:9999/", MinDelay: caddy.Duration(1500 * time.Millisecond)}).opaConfig()
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Labels   map[string]string
		Services map[string]struct{ URL string }
		DL       struct {
			Service   string
			Reporting map[string]int64
		} `json:"decision_logs"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.Labels["app"] != "resetguard" || c.Services[c.DL.Service].URL != "http://127.0.0.1:9999" ||
		c.DL.Reporting["min_delay_seconds"] != 2 || c.DL.Reporting["max_delay_seconds"] != 10 ||
		c.DL.Reporting["buffer_size_limit_bytes"] != dlogDefaultBuffer {
		t.Fatalf("%s", raw)
	}
}

func TestDecisionLogsMask(t *testing.T) {
	in := map[string]any{
		"request": map[string]any{"headers": map[string]any{
			"authorization": "Basic c2VjcmV0", "Cookie": "c", "X-XSRF-Token": "x", "SO-AppToken": "a", "X-Test": "kept",
		}},
		"list": []any{map[string]any{"password": "p", "token": "t"}},
	}
	out, _ := json.Marshal(maskValue(in))
	for _, s := range []string{"c2VjcmV0", `"c"`, `"x"`, `"a"`, `"p"`, `"t"`} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("%s survives masking: %s", s, out)
		}
	}
	if !bytes.Contains(out, []byte("kept")) {
		t.Errorf("masking removed too much: %s", out)
	}
	if got := queryPath("data.resetguard.allow"); got != "resetguard/allow" {
		t.Errorf("queryPath %q", got)
	}
}

// TestDecisionLogger runs OPA's plugin against a loopback collector:
// events arrive gzip'd on POST /logs, Stop flushes them, and a collector
// that never answers does not block log.
func TestDecisionLogger(t *testing.T) {
	var mu sync.Mutex
	var events []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil || r.URL.Path != "/logs" {
			t.Errorf("path %s, gzip %v", r.URL.Path, err)
			return
		}
		b, _ := io.ReadAll(zr)
		var batch []map[string]any
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Error(err)
		}
		mu.Lock()
		events = append(events, batch...)
		mu.Unlock()
	}))
	defer srv.Close()
	l, _, err := newDecisionLogger(context.Background(), &DecisionLogConfig{URL: srv.URL, MinDelay: caddy.Duration(time.Hour), MaxDelay: caddy.Duration(time.Hour)}, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	input := ast.MustParseTerm(`{"action": "reset", "credential": {"fingerprint": "fp"}}`).Value
	info := func() *server.Info {
		return decisionInfo("req-1", input, "data.resetguard.allow", "rev-1", policy.Decision{Allow: true}, nil, time.Millisecond, time.Now())
	}
	l.log(info)
	l.log(func() *server.Info {
		return decisionInfo("req-2", input, "data.resetguard.allow", "", policy.Decision{}, errors.New("boom"), 0, time.Now())
	})
	l.stop()    // flushes: the hour-long delay never elapses
	l.log(info) // after stop: ignored, no panic
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 {
		t.Fatalf("got %d events, want 2", len(events))
	}
	ev := events[0]
	if ev["decision_id"] == "" || ev["path"] != "resetguard/allow" || ev["revision"] != "rev-1" ||
		ev["labels"].(map[string]any)["app"] != "resetguard" || ev["result"].(map[string]any)["allow"] != true {
		t.Errorf("event %v", ev)
	}
	if ev["custom"].(map[string]any)["request_id"] != "req-1" {
		t.Errorf("custom %v", ev["custom"])
	}
	if events[1]["error"] == nil || events[1]["result"] != nil {
		t.Errorf("error event %v", events[1])
	}
}

func TestDecisionLoggerDeadCollector(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	l, _, err := newDecisionLogger(context.Background(), &DecisionLogConfig{URL: srv.URL, MinDelay: caddy.Duration(time.Second), MaxDelay: caddy.Duration(time.Second), BufferSizeLimit: 4096}, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	input := ast.MustParseTerm(`{"action": "reset"}`).Value
	start := time.Now()
	for range 10 * dlogQueue {
		l.log(func() *server.Info {
			return decisionInfo("r", input, "data.x", "", policy.Decision{Allow: true}, nil, 0, time.Now())
		})
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("logging took %v with a dead collector", d)
	}
	done := make(chan struct{})
	go func() { l.stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(dlogStopTimeout + 5*time.Second):
		t.Fatal("stop did not return")
	}
}

// TestDecisionLoggerPolicyMask: system.log.mask rules in the local policy
// files are evaluated by OPA's plugin.
func TestDecisionLoggerPolicyMask(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mask.rego"), []byte("package system.log\n\nmask contains \"/input/credential/fingerprint\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		b, _ := io.ReadAll(zr)
		got <- b
	}))
	defer srv.Close()
	l, masks, err := newDecisionLogger(context.Background(), &DecisionLogConfig{URL: srv.URL}, "test", []string{dir}, nil)
	if err != nil || !masks {
		t.Fatalf("err %v, policy masks %v", err, masks)
	}
	input := ast.MustParseTerm(`{"action": "reset", "credential": {"fingerprint": "fp-secretish"}}`).Value
	l.log(func() *server.Info {
		return decisionInfo("r", input, "data.x", "", policy.Decision{Allow: true}, nil, 0, time.Now())
	})
	l.stop()
	select {
	case b := <-got:
		if bytes.Contains(b, []byte("fp-secretish")) || !bytes.Contains(b, []byte(`"erased"`)) {
			t.Errorf("mask rule not applied: %s", b)
		}
	default:
		t.Fatal("no batch")
	}
}
