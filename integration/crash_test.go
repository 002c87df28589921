//go:build unix

package integration_test

// The crash test of issue 12: the built gateway binary (not the in-process
// Caddy of the other suites), SIGKILLed three times under allowed-reset
// load in front of a slow backend and restarted on the same durable audit
// file, then stopped cleanly. It proves the write-ahead contract: every
// reset the backend executed has an intent record; every intent has
// exactly one outcome; the intents a kill left open are closed on restart
// as unknown / gateway_restarted; `audit verify` passes.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/audit"
)

const (
	crashKills   = 3
	crashClients = 16
	// crashPerKill resets must start at the backend in a phase before its
	// kill (about a second at 16 clients and a 50–150 ms backend);
	// crashFinal in the last, cleanly stopped phase.
	crashPerKill = 150
	crashFinal   = 60
)

func TestCrashKilledGatewayUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway binary and runs it under load")
	}
	bin := buildCrashGateway(t)
	began := time.Now()
	// Fail (running the cleanups that kill the gateway) well before
	// go test's own timeout would panic without them.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.log")
	be := newCrashBackend(t, auditPath)
	backend := strings.TrimPrefix(be.srv.URL, "http://")

	phases := make([]*crashPhase, 0, crashKills+1)
	for n := 1; n <= crashKills+1; n++ {
		g := startCrashGateway(t, bin, dir, n, backend, auditPath)
		g.waitReady(ctx)
		last := n == crashKills+1
		want := crashPerKill
		if last {
			want = crashFinal
		}
		p := runCrashLoad(ctx, t, g, be, n, want, !last)
		if last {
			g.stop()
		} else {
			// The process is dead: what is in the file now is all it wrote.
			p.seqAtKill = readDurable(t, auditPath).maxSeq
		}
		phases = append(phases, p)
	}
	be.srv.Close() // waits for the backend's handlers, so the count is final

	trail := readDurable(t, auditPath)
	if trail.torn {
		t.Errorf("the audit file ends mid-record after a clean stop")
	}
	executed := be.executedIDs()
	checkCrashTrail(t, trail, executed, be.earlyIDs(), phases)
	verifyCrashTrail(t, bin, auditPath)
	t.Logf("crash test ran %v (excluding the build)", time.Since(began).Round(time.Millisecond))
}

// crashPhase is one run of the gateway under load, from the client side.
type crashPhase struct {
	n         int
	killed    bool
	seqAtKill int64 // the last chain seq in the file once the process died
	inflight  int64 // resets the backend was executing at the kill
	took      time.Duration

	mu       sync.Mutex
	sent     int
	errors   int            // transport errors (the kill cuts connections)
	statuses map[int]int    // answered requests by status
	answered map[string]int // request id -> status
}

// runCrashLoad runs crashClients clients until the backend has started
// want more resets, then (kill) SIGKILLs the gateway at once, right after
// a reset started at the backend, so at least one is in flight and its
// answer is lost.
func runCrashLoad(ctx context.Context, t *testing.T, g *crashGateway, be *crashBackend, n, want int, kill bool) *crashPhase {
	t.Helper()
	p := &crashPhase{n: n, killed: kill, statuses: map[int]int{}, answered: map[string]int{}}
	start := time.Now()
	target := be.total.Load() + int64(want)
	tr := &http.Transport{MaxIdleConnsPerHost: crashClients, DisableCompression: true}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range crashClients {
		wg.Go(func() { p.client(hc, g.addr, c, stop) })
	}
	err := be.waitTotal(ctx, target, g.done)
	if kill {
		p.inflight = be.inflight.Load()
		g.kill()
	}
	close(stop)
	wg.Wait()
	tr.CloseIdleConnections()
	p.took = time.Since(start)
	if err != nil {
		t.Fatalf("phase %d: %v\n%s", n, err, g.stderrTail())
	}
	return p
}

// client sends allowed resets, each with its own X-Request-Id
// (crash-p<phase>-c<client>-<n>), until stop is closed.
func (p *crashPhase) client(hc *http.Client, addr string, c int, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		id := fmt.Sprintf("crash-p%d-c%02d-%05d", p.n, c, i)
		// Session 1 is protected by the handoff policy; these never are.
		session := 1000 + i*crashClients + c
		url := fmt.Sprintf("http://%s/api/v1/ChatSession/%d/Reset", addr, session)
		req, err := http.NewRequest(http.MethodPost, url, http.NoBody)
		if err != nil {
			panic(err)
		}
		req.SetBasicAuth("chatbot", "secret")
		req.Header.Set("X-Request-Id", id)
		resp, err := hc.Do(req)
		p.mu.Lock()
		p.sent++
		if err != nil {
			p.errors++
		} else {
			p.statuses[resp.StatusCode]++
			p.answered[id] = resp.StatusCode
		}
		p.mu.Unlock()
		if err == nil {
			resp.Body.Close()
		}
	}
}

// crashRecord is what the test reads of a durable record.
type crashRecord struct {
	Event struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
	} `json:"event"`
	HTTP struct {
		Request struct {
			ID string `json:"id"`
		} `json:"request"`
	} `json:"http"`
	ResetGuard struct {
		Kind      string `json:"kind"`
		IntentSeq *int64 `json:"intent_seq"`
		Chain     struct {
			Seq int64 `json:"seq"`
		} `json:"chain"`
	} `json:"resetguard"`

	at string // file:line, for messages
}

// crashTrail is the durable file and its rotated siblings, oldest first.
type crashTrail struct {
	records []*crashRecord
	maxSeq  int64
	torn    bool // the live file ends without a newline
}

func readDurable(t *testing.T, path string) crashTrail {
	t.Helper()
	files, err := audit.RotatedFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr crashTrail
	for _, f := range append(files, path) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// A line cut by the kill is not a record yet: the next start
		// repairs it. Only the live file's last line can be one.
		if len(b) > 0 && b[len(b)-1] != '\n' {
			tr.torn = true
			b = b[:bytes.LastIndexByte(b, '\n')+1]
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for line := 1; sc.Scan(); line++ {
			r := &crashRecord{at: fmt.Sprintf("%s:%d", filepath.Base(f), line)}
			if err := json.Unmarshal(sc.Bytes(), r); err != nil {
				t.Fatalf("%s: not a JSON record: %v", r.at, err)
			}
			tr.records = append(tr.records, r)
			tr.maxSeq = max(tr.maxSeq, r.ResetGuard.Chain.Seq)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return tr
}

// verifyCrashTrail runs the built binary's own chain check.
func verifyCrashTrail(t *testing.T, bin, path string) {
	t.Helper()
	out, err := exec.Command(bin, "reset-guard", "audit", "verify", path).CombinedOutput()
	if err != nil {
		t.Errorf("reset-guard audit verify %s: %v\n%s", path, err, out)
		return
	}
	t.Logf("audit verify: %s", strings.TrimSpace(string(out)))
}

// crashPhaseOf reads the phase back out of a request id the load sent.
func crashPhaseOf(id string) int {
	var n int
	if _, err := fmt.Sscanf(id, "crash-p%d-", &n); err != nil {
		return 0
	}
	return n
}

// sortedFirst returns up to 5 of ids, sorted, for a readable message.
func sortedFirst(ids []string) []string {
	sort.Strings(ids)
	return ids[:min(len(ids), 5)]
}

// crashIndex is the trail indexed for the checks.
type crashIndex struct {
	intents  map[int64]*crashRecord   // by chain seq
	outcomes map[int64][]*crashRecord // by intent_seq
	byID     map[string][]*crashRecord
	kinds    map[string]int
	refusals map[string]int // by event.reason
}

func indexCrashTrail(t *testing.T, trail crashTrail) crashIndex {
	t.Helper()
	x := crashIndex{
		intents:  map[int64]*crashRecord{},
		outcomes: map[int64][]*crashRecord{},
		byID:     map[string][]*crashRecord{},
		kinds:    map[string]int{},
		refusals: map[string]int{},
	}
	var badKind, orphan []string
	for _, r := range trail.records {
		rg := r.ResetGuard
		x.kinds[rg.Kind]++
		x.byID[r.HTTP.Request.ID] = append(x.byID[r.HTTP.Request.ID], r)
		switch rg.Kind {
		case "intent":
			x.intents[rg.Chain.Seq] = r
		case "outcome":
			if rg.IntentSeq == nil {
				orphan = append(orphan, r.at+" (no intent_seq)")
				continue
			}
			x.outcomes[*rg.IntentSeq] = append(x.outcomes[*rg.IntentSeq], r)
		case "refusal":
			x.refusals[r.Event.Reason]++
		case "repair":
		default:
			badKind = append(badKind, fmt.Sprintf("%s (%q)", r.at, rg.Kind))
		}
	}
	for seq, outs := range x.outcomes {
		if x.intents[seq] == nil {
			orphan = append(orphan, fmt.Sprintf("%s (intent_seq %d is no intent)", outs[0].at, seq))
		}
	}
	if len(badKind) > 0 {
		t.Errorf("%d records have no known resetguard.kind, e.g. %v", len(badKind), sortedFirst(badKind))
	}
	if len(orphan) > 0 {
		t.Errorf("%d outcome records name no intent, e.g. %v", len(orphan), sortedFirst(orphan))
	}
	return x
}

// crashFigures are one phase's counts, for the checks and the log.
type crashFigures struct {
	executed, intents, outcomes, unknown int
	noIntent, noRecord, early            int
}

func checkCrashTrail(t *testing.T, trail crashTrail, executed map[string]int, early []string, phases []*crashPhase) {
	t.Helper()
	x := indexCrashTrail(t, trail)
	figs := make([]crashFigures, len(phases)+1) // by phase number; 0: not the load's
	checkCrashSafety(t, x, executed, figs)
	for _, id := range early {
		figs[crashPhaseOf(id)].early++
	}
	if len(early) > 0 {
		t.Errorf("SAFETY: %d of %d resets reached the backend before their intent record was in the durable file, e.g. %v",
			len(early), len(executed), sortedFirst(early))
	}
	checkCrashOutcomes(t, x, phases, figs)
	checkCrashAnswered(t, x, phases)
	logCrashFigures(t, x, phases, figs)
}

// checkCrashSafety is the property the issue is about: no reset reaches
// the backend before its intent is in the durable file.
func checkCrashSafety(t *testing.T, x crashIndex, executed map[string]int, figs []crashFigures) {
	t.Helper()
	var noIntent, twice []string
	for id, times := range executed {
		f := &figs[crashPhaseOf(id)]
		f.executed += times
		if times > 1 {
			twice = append(twice, id)
		}
		hasIntent := false
		for _, r := range x.byID[id] {
			hasIntent = hasIntent || r.ResetGuard.Kind == "intent"
		}
		if !hasIntent {
			noIntent = append(noIntent, id)
			f.noIntent++
			if len(x.byID[id]) == 0 {
				f.noRecord++
			}
		}
	}
	if figs[0].executed > 0 {
		t.Errorf("the backend executed %d resets without the client's X-Request-Id", figs[0].executed)
	}
	if len(twice) > 0 {
		t.Errorf("the backend executed %d resets more than once, e.g. %v", len(twice), sortedFirst(twice))
	}
	if len(noIntent) > 0 {
		var none int
		for _, f := range figs {
			none += f.noRecord
		}
		t.Errorf("SAFETY: %d of %d resets the backend executed have no intent record in the durable file (%d have no record at all), e.g. %v",
			len(noIntent), len(executed), none, sortedFirst(noIntent))
	}
}

// checkCrashOutcomes: every intent has exactly one outcome; an outcome
// written after a kill for an intent from before it (the restart's
// recovery) says unknown / gateway_restarted, and only those say so.
func checkCrashOutcomes(t *testing.T, x crashIndex, phases []*crashPhase, figs []crashFigures) {
	t.Helper()
	var notOne, badRecovery, badRestarted []string
	for seq, in := range x.intents {
		f := &figs[crashPhaseOf(in.HTTP.Request.ID)]
		f.intents++
		outs := x.outcomes[seq]
		if len(outs) != 1 {
			notOne = append(notOne, fmt.Sprintf("%s (%d outcomes)", in.at, len(outs)))
		}
		for _, out := range outs {
			f.outcomes++
			restarted := out.Event.Reason == "gateway_restarted"
			if !crashKilledBetween(phases, seq, out.ResetGuard.Chain.Seq) {
				if restarted {
					badRestarted = append(badRestarted, out.at)
				}
				continue
			}
			if out.Event.Outcome != "unknown" || !restarted {
				badRecovery = append(badRecovery, fmt.Sprintf("%s (%s/%s)", out.at, out.Event.Outcome, out.Event.Reason))
				continue
			}
			f.unknown++
		}
	}
	if len(notOne) > 0 {
		t.Errorf("%d of %d intents do not have exactly one outcome, e.g. %v", len(notOne), len(x.intents), sortedFirst(notOne))
	}
	if len(badRecovery) > 0 {
		t.Errorf("%d outcomes closing an intent across a kill are not unknown/gateway_restarted, e.g. %v", len(badRecovery), sortedFirst(badRecovery))
	}
	if len(badRestarted) > 0 {
		t.Errorf("%d outcomes say gateway_restarted with no kill after their intent, e.g. %v", len(badRestarted), sortedFirst(badRestarted))
	}
	for _, p := range phases {
		if p.killed && p.inflight > 0 && figs[p.n].unknown == 0 {
			t.Errorf("kill %d cut %d resets in flight at the backend, yet the restart closed no intent as gateway_restarted", p.n, p.inflight)
		}
	}
}

// crashKilledBetween reports whether a kill fell between two chain seqs:
// the intent was in the file when the process died, the outcome was not.
func crashKilledBetween(phases []*crashPhase, intentSeq, outcomeSeq int64) bool {
	for _, p := range phases {
		if p.killed && intentSeq <= p.seqAtKill && p.seqAtKill < outcomeSeq {
			return true
		}
	}
	return false
}

// checkCrashAnswered keeps the older promise too: a response the client
// received has its outcome record.
func checkCrashAnswered(t *testing.T, x crashIndex, phases []*crashPhase) {
	t.Helper()
	var missing []string
	for _, p := range phases {
		for id := range p.answered {
			found := false
			for _, r := range x.byID[id] {
				found = found || r.ResetGuard.Kind == "outcome" || r.ResetGuard.Kind == "refusal"
			}
			if !found {
				missing = append(missing, id)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d answered requests have no outcome or refusal record, e.g. %v", len(missing), sortedFirst(missing))
	}
}

// logCrashFigures prints the figures the closing note quotes.
func logCrashFigures(t *testing.T, x crashIndex, phases []*crashPhase, figs []crashFigures) {
	t.Helper()
	var sum crashFigures
	for _, p := range phases {
		f := figs[p.n]
		name := fmt.Sprintf("kill %d (%d resets in flight at the backend)", p.n, p.inflight)
		if !p.killed {
			name = "final run (clean stop)"
		}
		t.Logf("%s, %v of load: backend executed %d; intents %d, outcomes %d, unknown/gateway_restarted %d; executed without intent %d (without any record %d), before the intent was in the file %d; clients sent %d, answers %v, transport errors %d",
			name, p.took.Round(time.Millisecond), f.executed, f.intents, f.outcomes, f.unknown, f.noIntent, f.noRecord, f.early, p.sent, p.statuses, p.errors)
		sum.executed += f.executed
		sum.intents += f.intents
		sum.outcomes += f.outcomes
		sum.unknown += f.unknown
		sum.noIntent += f.noIntent
		sum.noRecord += f.noRecord
		sum.early += f.early
	}
	t.Logf("total: backend executed %d; intents %d, outcomes %d, unknown/gateway_restarted %d; executed without intent %d (without any record %d), before the intent was in the file %d; records by kind %v, refusals by reason %v",
		sum.executed, sum.intents, sum.outcomes, sum.unknown, sum.noIntent, sum.noRecord, sum.early, x.kinds, x.refusals)
}
