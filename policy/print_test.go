package policy

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

const (
	printDir   = "../testdata/strict/print"
	printQuery = "data.strict.print.decision"
)

// printManager is a Manager for cfg whose logger records entries at level
// and above.
func printManager(t *testing.T, cfg Config, level zapcore.Level) (*Manager, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(level)
	m, err := NewManager(context.Background(), cfg, nil, 0, zap.New(core).Named("http.handlers.reset_guard"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	return m, logs
}

func evalOK(t *testing.T, e *Engine) Decision {
	t.Helper()
	d, err := e.Eval(context.Background(), botInput().Value())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPrintGoesToTheDebugLogger: print() output is a debug entry of the
// handler's "policy" logger, with where it was printed and under which
// revision, and nothing at all when debug is off.
func TestPrintGoesToTheDebugLogger(t *testing.T) {
	cfg := Config{Paths: []string{printDir}, Query: printQuery}
	t.Run("debug on", func(t *testing.T) {
		m, logs := printManager(t, cfg, zapcore.DebugLevel)
		if d := evalOK(t, m.Engine()); !d.Allow {
			t.Fatalf("decision %+v, want an allow", d)
		}
		entries := logs.FilterMessage("policy print").All()
		if len(entries) != 1 {
			t.Fatalf("%d print entries, want 1: %v", len(entries), logs.All())
		}
		e := entries[0]
		f := e.ContextMap()
		if e.Level != zapcore.DebugLevel || e.LoggerName != "http.handlers.reset_guard.policy" {
			t.Errorf("entry at %s on %q, want debug on http.handlers.reset_guard.policy", e.Level, e.LoggerName)
		}
		if f["output"] != "deciding for session 427 as chatbot" || !strings.HasSuffix(f["location"].(string), "policy.rego:7") ||
			f["policy_revision"] != m.Engine().Revision() || f["truncated"] != false {
			t.Errorf("entry fields %v", f)
		}
	})
	t.Run("debug off", func(t *testing.T) {
		m, logs := printManager(t, cfg, zapcore.InfoLevel)
		evalOK(t, m.Engine())
		if n := logs.FilterMessage("policy print").Len(); n != 0 {
			t.Errorf("%d print entries with debug off", n)
		}
	})
	t.Run("no hook", func(t *testing.T) {
		e := newEngine(t, cfg)
		if d := evalOK(t, e); !d.Allow {
			t.Fatalf("decision %+v, want an allow", d)
		}
	})
}

// TestPrintPerConfig: two configs sharing one compiled policy (a reload)
// print each to its own logger.
func TestPrintPerConfig(t *testing.T) {
	cfg := Config{Paths: []string{printDir}, Query: printQuery}
	a, logsA := printManager(t, cfg, zapcore.DebugLevel)
	b, logsB := printManager(t, cfg, zapcore.DebugLevel)
	if a.Engine().compiled != b.Engine().compiled {
		t.Fatal("the configs do not share the compiled policy")
	}
	evalOK(t, b.Engine())
	if logsA.Len() != 0 || logsB.FilterMessage("policy print").Len() != 1 {
		t.Errorf("entries: first config %d, second %d; want 0 and 1", logsA.Len(), logsB.Len())
	}
}

// TestPrintTruncated: a long print is cut to maxPrintBytes on a rune
// boundary, and says so.
func TestPrintTruncated(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package long

decision if {
	print(concat("", [s | some _ in numbers.range(1, 5000); s := "é"]))
}
`})
	// 5 000 iterations under -race on a busy machine can pass the
	// default 100 ms; the timeout is not what this test is about.
	m, logs := printManager(t, Config{Paths: []string{dir}, Query: "data.long.decision", Timeout: 10 * time.Second}, zapcore.DebugLevel)
	evalOK(t, m.Engine())
	entries := logs.FilterMessage("policy print").All()
	if len(entries) != 1 {
		t.Fatalf("%d print entries, want 1", len(entries))
	}
	f := entries[0].ContextMap()
	out, _ := f["output"].(string)
	if len(out) > maxPrintBytes || len(out) < maxPrintBytes-utf8.UTFMax || !utf8.ValidString(out) || f["truncated"] != true {
		t.Errorf("output of %d bytes (valid UTF-8 %v), truncated %v; want at most %d, cut on a rune", len(out), utf8.ValidString(out), f["truncated"], maxPrintBytes)
	}
}
