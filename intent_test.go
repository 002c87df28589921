package resetguard

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/resetguard/caddy-resetguard/audit"
)

// durableLines reads the durable audit file as JSON objects.
func durableLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rg returns the record's resetguard object.
func rg(m map[string]any) map[string]any {
	r, _ := m["resetguard"].(map[string]any)
	return r
}

// chainSeq is the record's seq in the durable chain.
func chainSeq(m map[string]any) any {
	c, _ := rg(m)["chain"].(map[string]any)
	return c["seq"]
}

// TestIntentIsDurableBeforeForwarding holds the write-ahead rule: when
// the backend is called, the intent record of that very request is
// already in the durable file; the outcome follows, linked to it, and the
// Caddy logger keeps one record (the outcome).
func TestIntentIsDurableBeforeForwarding(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	h, logs := provisioned(t, &Handler{Policy: testPolicy(), Audit: &AuditConfig{File: &AuditFile{Path: path}}})
	t.Cleanup(func() { _ = h.Cleanup() })

	var atForward []map[string]any
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		atForward = durableLines(t, path)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ChatSessionId": 427}`))
		return nil
	})
	r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
	r.Header = basicHeader("bot", http.Header{"X-Request-Id": {"wal-1"}})
	w := httptest.NewRecorder()
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil)
	if err := h.ServeHTTP(w, r, next); err != nil || w.Code != http.StatusOK {
		t.Fatalf("status %d, err %v: %s", w.Code, err, w.Body)
	}

	if len(atForward) != 1 || rg(atForward[0])["kind"] != "intent" {
		t.Fatalf("at forwarding the file held %v, want exactly the intent", atForward)
	}
	intent := atForward[0]
	if req, _ := intent["http"].(map[string]any)["request"].(map[string]any); req["id"] != "wal-1" {
		t.Errorf("intent request %v, want wal-1", req)
	}
	if ev, _ := intent["event"].(map[string]any); ev["outcome"] != "unknown" || rg(intent)["decision"] == nil {
		t.Errorf("intent event %v, decision %v: want outcome unknown and the decision", ev, rg(intent)["decision"])
	}
	lines := durableLines(t, path)
	if len(lines) != 2 || rg(lines[1])["kind"] != "outcome" {
		t.Fatalf("file holds %d records, want intent then outcome: %v", len(lines), lines)
	}
	if got, want := rg(lines[1])["intent_seq"], chainSeq(intent); got != want {
		t.Errorf("outcome intent_seq %v, want the intent's seq %v", got, want)
	}
	rec, ev := soleRecord(t, logs)
	checkEvent(t, ev, "", "success", "allowed")
	if k, _ := rec["resetguard"].(map[string]any); k["kind"] != "outcome" {
		t.Errorf("logger record kind %v, want outcome", k["kind"])
	}
}

// TestRefusalIsOneRecord: a refused reset never reaches the backend, so
// it has no intent: one record, in the file and on the logger.
func TestRefusalIsOneRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	h, logs := provisioned(t, &Handler{Policy: testPolicy(), Audit: &AuditConfig{File: &AuditFile{Path: path}}})
	t.Cleanup(func() { _ = h.Cleanup() })
	w, _, forwarded := serveStep(t, h, stepRefusal{header: basicHeader("mallory", nil)}.request())
	if forwarded || w.Code != http.StatusForbidden {
		t.Fatalf("status %d, forwarded %v", w.Code, forwarded)
	}
	lines := durableLines(t, path)
	if len(lines) != 1 || rg(lines[0])["kind"] != "refusal" || rg(lines[0])["intent_seq"] != nil {
		t.Fatalf("file holds %v, want one refusal record without intent_seq", lines)
	}
	rec, _ := soleRecord(t, logs)
	if rec["resetguard"].(map[string]any)["kind"] != "refusal" {
		t.Errorf("logger record %v, want kind refusal", rec["resetguard"])
	}
}

// TestIntentNotDurableRefuses: when the intent cannot be written, the
// reset is refused with 503 audit_unavailable and never forwarded. The
// disk breaks between the audit health check and the intent: the
// principal lookup, which runs in between, takes the directory away.
func TestIntentNotDurableRefuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	breakDisk := func() {
		if err := os.Rename(dir, dir+".moved"); err == nil {
			_ = os.WriteFile(dir, []byte("not a directory"), 0o600)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		breakDisk()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"UserType": "SystemAssociate", "AssociateId": 9}`))
	}))
	t.Cleanup(srv.Close)
	h, logs := provisioned(t, &Handler{Policy: testPolicy(),
		Identity: &Identity{PrincipalLookup: &PrincipalLookupIdentity{Upstream: srv.URL}},
		Audit:    &AuditConfig{File: &AuditFile{Path: filepath.Join(dir, "audit.log")}}})
	t.Cleanup(func() { _ = h.Cleanup() })

	w, repl, forwarded := serveStep(t, h, stepRefusal{}.request())
	if forwarded {
		t.Fatal("a reset whose intent was not durable reached the backend")
	}
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "audit_unavailable") {
		t.Fatalf("status %d body %s, want 503 audit_unavailable", w.Code, w.Body)
	}
	rec, ev := soleRecord(t, logs)
	checkEvent(t, ev, "audit_unavailable", "failure", "denied")
	if rg(rec)["audit_fallback"] != true {
		t.Errorf("the refusal's record is not marked as kept on the logger only: %v", rg(rec))
	}
	if d, _ := repl.GetString("http.reset_guard.decision"); d != verdictRefused {
		t.Errorf("decision placeholder %q, want %q", d, verdictRefused)
	}
}

// BenchmarkServeHTTPDurableAllow measures what the durable file costs an
// allowed reset: without a file (one logger record), and with one under
// each fsync mode (intent and outcome written, the intent waited for
// before forwarding). Parallel, so that concurrent resets share fsyncs
// (group commit) as they do under load.
func BenchmarkServeHTTPDurableAllow(b *testing.B) {
	entity := entityFixture(b)
	next := handlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(entity)
		return nil
	})
	for _, mode := range []string{"none", "never", "interval", "always"} {
		b.Run(mode, func(b *testing.B) {
			cfg := &Handler{Policy: benchPolicy()}
			if mode != "none" {
				cfg.Audit = &AuditConfig{File: &AuditFile{Path: filepath.Join(b.TempDir(), "audit.log"), Fsync: mode}}
			}
			h, _ := provisioned(b, cfg)
			b.Cleanup(func() { _ = h.Cleanup() })
			h.sink = audit.NewSink(zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(discard{}), zapcore.InfoLevel)))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequest(http.MethodPost, "/api/v1/ChatSession/427/Reset", nil)
					r.SetBasicAuth("chatbot", "pw")
					w := httptest.NewRecorder()
					_ = h.ServeHTTP(w, r, next)
					if w.Code != http.StatusOK {
						b.Errorf("status %d: %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
