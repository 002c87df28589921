package integration_test

// Durable audit: a real Caddy writes hash-chained records to real files
// under load, through a failing disk and through rotation; the chain is
// then verified with the same code as `resetguard audit verify`.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/ecstest"
)

// chainFiles lists a sink's files in chain order: rotated files by name,
// then the live file.
func chainFiles(t *testing.T, dir string) []string {
	t.Helper()
	rotated, err := filepath.Glob(filepath.Join(dir, "audit.log.*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(rotated)
	return append(rotated, filepath.Join(dir, "audit.log"))
}

// countLines counts the final records in paths (a refusal's one record
// or a forwarded reset's outcome: one per guarded request) and the
// intent records written before forwarding.
func countLines(t *testing.T, paths []string) int {
	t.Helper()
	final, _ := countKinds(t, paths)
	return final
}

func countKinds(t *testing.T, paths []string) (final, intents int) {
	t.Helper()
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r struct {
				RG struct {
					Kind string `json:"kind"`
				} `json:"resetguard"`
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if r.RG.Kind == "intent" {
				intents++
			} else {
				final++
			}
		}
		f.Close()
	}
	return final, intents
}

// verifyChain fails the test unless the files form one intact chain;
// when says at which point of the test.
func verifyChain(t *testing.T, when string, files []string) {
	t.Helper()
	rep, err := audit.VerifyFiles(nil, files...)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstProblem != nil {
		t.Fatalf("chain broken %s: %+v", when, *rep.FirstProblem)
	}
}

// resetOnce sends one reset; user decides allow (bot) or deny (mallory);
// delay makes the backend slow; timeout makes the client give up that long
// after the request is on the wire. (Counting from the start instead, a
// slow dial under load could abandon a request the gateway never saw, and
// that needs no record.)
func resetOnce(base, user, caseID string, delay bool, timeout time.Duration) (int, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { time.AfterFunc(timeout, cancel) },
		})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+restReset, http.NoBody)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", basic(user, "hunter2"))
	req.Header.Set("X-Test-Case", caseID)
	if delay {
		req.Header.Set("X-Backend-Delay", "300ms")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// TestDurableAuditUnderLoad: 5 000 guarded requests at 64-way concurrency,
// half allowed, half denied, some abandoned by their client while the
// backend is slow: exactly one record each, the chain verifies, and the
// allowed records equal the resets the backend received.
func TestDurableAuditUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	g := startGateway(t)
	const total, workers = 5000, 64
	before := countLines(t, chainFiles(t, g.durableDir))
	start := time.Now()
	cancelled := sendDurableLoad(t, total, workers)
	elapsed := time.Since(start)
	t.Logf("%d requests in %s (%.0f req/s), %d abandoned by their client", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), cancelled)

	// Abandoned requests finish on the gateway after their client left;
	// wait for their records (the backend's delay is 300ms).
	files := chainFiles(t, g.durableDir)
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, files)-before < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := countLines(t, files) - before; got != total {
		t.Fatalf("%d records for %d requests, want exactly one each", got, total)
	}
	verifyChain(t, "under load", files)
	checkDurableLines(t, files)

	// A request abandoned by its client may be cancelled before the proxy
	// reaches the backend (its record says allowed, then client_gone), or
	// after. So: no reset reaches the backend without an allowed record, and
	// every allowed record that completed stands for one received reset.
	allowed, gone := countAllowed(t, files)
	got := len(g.backend.requests("load"))
	// The write-ahead rule: every reset the backend received had its
	// intent on disk first, and every intent has its outcome.
	if _, intents := countKinds(t, files); got > intents || intents != allowed {
		t.Fatalf("the backend received %d resets; %d intents, %d allowed outcomes: want resets <= intents == outcomes", got, intents, allowed)
	}
	if got > allowed || got < allowed-gone {
		t.Fatalf("the backend received %d resets; want between %d completed and %d allowed records", got, allowed-gone, allowed)
	}
	if allowed-gone < total/2-cancelled {
		t.Fatalf("%d completed allowed records, want at least %d", allowed-gone, total/2-cancelled)
	}
	t.Logf("%d records, chain verified, %d allowed (%d abandoned), %d resets at the backend", total, allowed, gone, got)
}

// sendDurableLoad sends total resets from workers clients to durableURL,
// alternately allowed and denied, every 25th allowed one abandoned by its
// client while the backend takes its time; it returns how many were
// abandoned and fails the test if any other request failed.
func sendDurableLoad(t *testing.T, total, workers int64) int {
	t.Helper()
	var next, cancelled, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				user := "bot"
				if i%2 == 1 {
					user = "mallory"
				}
				abandon := i%50 == 0
				timeout := time.Duration(0)
				if abandon {
					timeout = 100 * time.Millisecond
				}
				code, err := resetOnce(durableURL, user, "load", abandon, timeout)
				switch {
				case err != nil && abandon:
					cancelled.Add(1)
				case err != nil:
					failed.Add(1)
				case user == "bot" && code != 200, user == "mallory" && code != 403:
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	return int(cancelled.Load())
}

// checkDurableLines holds every durable record in files to ECS 8.11.0's
// field definitions and to one event.id per record: under load, two
// records per allowed reset and thousands per second, no id repeats.
func checkDurableLines(t *testing.T, files []string) {
	t.Helper()
	ecs := auditLineECS(t)
	ids := map[string]string{}
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s:%d: %v", p, i+1, err)
			}
			if errs := ecs.Check(m); len(errs) > 0 {
				t.Fatalf("%s:%d breaks ECS %s:%s\n%s", p, i+1, ecstest.Version, ecstest.Join(errs), line)
			}
			id, _ := field(m, "event.id").(string)
			at := fmt.Sprintf("%s:%d", filepath.Base(p), i+1)
			if prev, dup := ids[id]; dup || id == "" {
				t.Fatalf("%s: event.id %q, also at %s", at, id, prev)
			}
			ids[id] = at
		}
	}
}

// countAllowed counts the allowed records in files, and of them those
// whose client left (client_gone).
func countAllowed(t *testing.T, files []string) (allowed, gone int) {
	t.Helper()
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
			var r struct {
				Event struct {
					Type   []string `json:"type"`
					Reason string   `json:"reason"`
				} `json:"event"`
				RG struct {
					Kind string `json:"kind"`
				} `json:"resetguard"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("record %q: %v", line, err)
			}
			if r.RG.Kind != "intent" && slices.Equal(r.Event.Type, []string{"allowed"}) {
				allowed++
				if r.Event.Reason == "client_gone" {
					gone++
				}
			}
		}
	}
	return allowed, gone
}

// TestDurableAuditFailureRefusesResets: while the audit file cannot be
// written, resets are refused with 503 and none reaches the backend; when
// the disk is back, service resumes and the chain still verifies.
func TestDurableAuditFailureRefusesResets(t *testing.T) {
	g := startGateway(t)
	dir := g.durableDir
	if code, err := resetOnce(durableURL, "bot", "fault-before", false, 0); err != nil || code != 200 {
		t.Fatalf("before the fault: %d %v", code, err)
	}
	repair := breakDir(t, dir)
	for i := range 5 {
		code, err := resetOnce(durableURL, "bot", "fault-during", false, 0)
		if err != nil || code != http.StatusServiceUnavailable {
			t.Fatalf("request %d during the fault: %d %v, want 503", i, code, err)
		}
	}
	if n := len(g.backend.requests("fault-during")); n != 0 {
		t.Fatalf("%d resets reached the backend while the audit file was down", n)
	}
	// The operator sees it on the admin status route.
	durablePath := filepath.Join(dir, "audit.log")
	if healthy, errText, found := auditFileStatus(t, durablePath); !found || healthy || errText == "" {
		t.Errorf("status during the fault: found %v, healthy %v, error %q; want unhealthy with the error", found, healthy, errText)
	}

	repair()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, err := resetOnce(durableURL, "bot", "fault-after", false, 0)
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not resume after the disk came back: %d %v", code, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if healthy, errText, found := auditFileStatus(t, durablePath); !found || !healthy || errText != "" {
		t.Errorf("status after the repair: found %v, healthy %v, error %q; want healthy", found, healthy, errText)
	}
	verifyChain(t, "after the fault", chainFiles(t, dir))
}

// breakDir breaks the disk under dir: the directory goes away and a
// regular file takes its name, so neither the open file's path nor a
// reopen works (this works as root, where a read-only mode would not stop
// writes). The returned func brings the directory back with its files.
func breakDir(t *testing.T, dir string) (repair func()) {
	t.Helper()
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(moved, dir); err != nil {
			t.Fatal(err)
		}
	}
}

// auditFileStatus is what the admin status route says of the durable
// audit file at path.
func auditFileStatus(t *testing.T, path string) (healthy bool, errText string, found bool) {
	t.Helper()
	for _, h := range getStatus(t).Handlers {
		if f := h.Audit.File; f != nil && f.Path == path {
			return f.Healthy, f.Error, true
		}
	}
	return false, "", false
}

// TestDurableAuditRotationUnderLoad: a 32 KiB rotation limit under 16-way
// load loses and splits no record, and the chain runs across the files.
func TestDurableAuditRotationUnderLoad(t *testing.T) {
	g := startGateway(t)
	const total = 600
	var wg sync.WaitGroup
	var next, failed atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				if code, err := resetOnce(rotateURL, "bot", "rotate", false, 0); err != nil || code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	files := chainFiles(t, g.rotateDir)
	if len(files) < 3 {
		t.Fatalf("only %d files: rotation did not happen", len(files))
	}
	if got := countLines(t, files); got != total {
		t.Fatalf("%d records across %d files, want %d", got, len(files), total)
	}
	verifyChain(t, "across rotation", files)
	t.Logf("%d records in %d files, chain verified", total, len(files))
}
