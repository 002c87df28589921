package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/ecstest"
)

// loadECS reads the ECS 8.11.0 field definitions kept in testdata.
func loadECS(t *testing.T) *ecstest.Schema {
	t.Helper()
	s, err := ecstest.Load(filepath.Join("..", ecstest.Excerpt))
	if err != nil {
		t.Fatal(err)
	}
	if ECSVersion != ecstest.Version {
		t.Fatalf("ECSVersion %q, the definitions are ECS %s", ECSVersion, ecstest.Version)
	}
	return s
}

// decodeNumbers decodes a JSON object keeping numbers as written.
func decodeNumbers(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m, err := decodeObject(b)
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return m
}

// TestRecordsConformToECS writes records of every kind through the two
// sinks as the gateway does: an allowed reset's intent and outcome, every
// outcome and refusal the handler builds, and the records the durable
// sink writes on its own when it opens (the repair of a torn last line,
// the gateway_restarted outcome of an intent left open). Every line of
// the durable file and every Caddy logger copy must meet ECS 8.11.0's
// field definitions (ecstest.Check: types, allowed values, expected
// category/type pairs); event.id must be unique per record and the same
// on both copies of one record; only the file's lines carry the chain.
func TestRecordsConformToECS(t *testing.T) {
	ecs := loadECS(t)
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")

	// A gateway that stopped after an intent, mid-way through its next
	// line: the next open appends a repair and a gateway_restarted.
	s := fsOpen(t, FileSinkConfig{Path: path, Fsync: FsyncNever})
	stopped := NewIntent(walRequest(cs, 1))
	if err := s.Write(stopped); err != nil {
		t.Fatal(err)
	}
	s.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"@timestamp":"2026-11-25T10:00:09Z","ecs":{"ver`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = fsOpen(t, FileSinkConfig{Path: path, Fsync: FsyncNever})
	logged := append([]*Record(nil), s.OpenRecords()...) // the handler copies them to its logger
	if len(logged) != 2 {
		t.Fatalf("open wrote %d records, want a repair and a gateway_restarted outcome", len(logged))
	}

	write := func(r *Record, toLogger bool) {
		t.Helper()
		if err := s.Write(r); err != nil {
			t.Fatal(err)
		}
		if toLogger {
			logged = append(logged, r)
		}
	}
	// An allowed reset: its intent (file only), then its outcome.
	req := walRequest(cs, 2)
	intent := NewIntent(req)
	write(intent, false)
	req.Kind, req.IntentSeq = KindOutcome, intent.Chain.Seq
	write(req, true)
	// Every way a request ends, and every kind, in a stable order.
	fixtures := outcomeRecords(t)
	for name, r := range kindRecords(t) {
		fixtures["kind: "+name] = r
	}
	names := make([]string, 0, len(fixtures))
	for n := range fixtures {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := fixtures[n]
		write(r, r.Kind != KindIntent)
	}
	s.Close()

	// The durable file: every line ECS-conformant, every event.id unique.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fileByID := map[string]map[string]any{}
	seen := map[string]int{} // event.category/type pairs met, so the test cannot pass on nothing
	for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		m := decodeNumbers(t, line)
		if errs := ecs.Check(m); len(errs) > 0 {
			t.Errorf("file line %d breaks ECS %s:%s\n%s", i+1, ecstest.Version, ecstest.Join(errs), line)
		}
		if _, ok := objAt(m, "resetguard")["chain"]; !ok {
			t.Errorf("file line %d has no chain: %s", i+1, line)
		}
		ev := objAt(m, "event")
		id, _ := ev["id"].(string)
		if !isEventID(id) {
			t.Errorf("file line %d: event.id %q is not a fresh id", i+1, id)
		}
		if fileByID[id] != nil {
			t.Errorf("file line %d: event.id %s already used", i+1, id)
		}
		fileByID[id] = m
		cat, _ := json.Marshal(ev["category"])
		typ, _ := json.Marshal(ev["type"])
		seen[string(cat)+" "+string(typ)]++
	}
	for _, pair := range []string{`["api"] ["allowed"]`, `["api"] ["denied"]`, `["file"] ["change"]`} {
		if seen[pair] == 0 {
			t.Errorf("no record with category/type %s among %v", pair, seen)
		}
	}
	if id := stopped.EventID; fileByID[id] == nil {
		t.Errorf("the stopped intent's event.id %s is not in the file", id)
	}

	// The Caddy logger's copies: ECS-conformant with Caddy's envelope,
	// no chain, and the same record as the file's line of that id.
	for _, r := range logged {
		line := caddyLine(t, r)
		m := decodeNumbers(t, []byte(line))
		if errs := ecs.Check(m); len(errs) > 0 {
			t.Errorf("logger copy breaks ECS %s:%s\n%s", ecstest.Version, ecstest.Join(errs), line)
		}
		if strings.Contains(line, `"chain"`) {
			t.Errorf("logger copy carries the chain: %s", line)
		}
		inFile := fileByID[r.EventID]
		if inFile == nil {
			t.Errorf("logger copy's event.id %s is not in the file", r.EventID)
			continue
		}
		stripEnvelope(m)
		delete(objAt(inFile, "resetguard"), "chain")
		lj, _ := json.Marshal(m)
		fj, _ := json.Marshal(inFile)
		if !bytes.Equal(lj, fj) {
			t.Errorf("logger copy and file line of %s differ:\nlogger %s\nfile   %s", r.EventID, lj, fj)
		}
	}

	// And the file, sink-written records and all, still verifies.
	rep, err := VerifyFiles(nil, path)
	if err != nil || rep.FirstProblem != nil {
		t.Fatalf("verify: %v %+v", err, rep.FirstProblem)
	}
}

// TestEarlierRecordsBreakECS: the check is not vacuous. The golden
// file's lines, written before the record conformed to ECS 8.11.0, fail
// it for exactly the reasons issue 15 names: a two-part ecs.version and
// allowed/denied under the iam category.
func TestEarlierRecordsBreakECS(t *testing.T) {
	ecs := loadECS(t)
	b, err := os.ReadFile(goldenPlain)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	got := ecstest.Join(ecs.Check(decodeNumbers(t, line)))
	for _, want := range []string{"ecs.version 8.11, want 8.11.0", `event.type "allowed" is not an expected type of event.category "iam"`} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %s\nwant one containing %q", got, want)
		}
	}
	if n := strings.Count(got, "\n"); n != 2 {
		t.Errorf("%d errors, want the two:%s", n, got)
	}
}
