package resetguard_test

// Durable audit integration: a real Caddy writes hash-chained records to
// real files under load, through a failing disk and through rotation; the
// chain is then verified with the same code as `resetguard audit verify`.

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
)

const (
	durableURL = "http://localhost:9089" // audit file with fsync interval
	rotateURL  = "http://localhost:9090" // audit file rotated at 32 KiB
)

// auditFixture holds the directories of the durable audit sites.
type auditFixture struct {
	durableDir, rotateDir string
}

func newAuditFixture(t *testing.T, base string) *auditFixture {
	t.Helper()
	f := &auditFixture{durableDir: filepath.Join(base, "durable"), rotateDir: filepath.Join(base, "rotate")}
	for _, d := range []string{f.durableDir, f.rotateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *auditFixture) sites(policyDir, upstream string) string {
	return fmt.Sprintf(`
http://localhost:9089 {
	reset_guard {
		policy %[1]s {
			query data.resetguard.test.decision
			timeout 2s
		}
		audit {
			file %[2]s {
				fsync interval 50ms
			}
		}
	}
	reverse_proxy %[4]s
}
http://localhost:9090 {
	reset_guard {
		policy %[1]s {
			query data.resetguard.test.decision
			timeout 2s
		}
		audit {
			file %[3]s {
				fsync never
				max_size 32KiB
			}
		}
	}
	reverse_proxy %[4]s
}
`, policyDir, filepath.Join(f.durableDir, "audit.log"), filepath.Join(f.rotateDir, "audit.log"), upstream)
}

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

func countLines(t *testing.T, paths []string) int {
	t.Helper()
	n := 0
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
			n++
		}
		f.Close()
	}
	return n
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/ChatSession/427/Reset", http.NoBody)
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
	files := chainFiles(t, g.audit.durableDir)
	before := countLines(t, files)

	var next atomic.Int64
	var cancelled, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
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
				// Every 25th allowed request is abandoned by its client
				// while the backend takes its time.
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
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	t.Logf("%d requests in %s (%.0f req/s), %d abandoned by their client", total, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), cancelled.Load())

	// Abandoned requests finish on the gateway after their client left;
	// wait for their records (the backend's delay is 300ms).
	files = chainFiles(t, g.audit.durableDir)
	deadline := time.Now().Add(10 * time.Second)
	for countLines(t, files)-before < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := countLines(t, files) - before; got != total {
		t.Fatalf("%d records for %d requests, want exactly one each", got, total)
	}
	rep, err := audit.VerifyFiles(nil, files...)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstProblem != nil {
		t.Fatalf("chain broken: %+v", *rep.FirstProblem)
	}

	// A request abandoned by its client may be cancelled before the proxy
	// reaches the backend (its record says allowed, then client_gone), or
	// after. So: no reset reaches the backend without an allowed record, and
	// every allowed record that completed stands for one received reset.
	allowed, gone := 0, 0
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
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("record %q: %v", line, err)
			}
			if slices.Equal(r.Event.Type, []string{"allowed"}) {
				allowed++
				if r.Event.Reason == "client_gone" {
					gone++
				}
			}
		}
	}
	got := len(g.backend.requests("load"))
	if got > allowed || got < allowed-gone {
		t.Fatalf("the backend received %d resets; want between %d completed and %d allowed records", got, allowed-gone, allowed)
	}
	if allowed-gone < total/2-int(cancelled.Load()) {
		t.Fatalf("%d completed allowed records, want at least %d", allowed-gone, total/2-int(cancelled.Load()))
	}
	t.Logf("%d records, chain verified, %d allowed (%d abandoned), %d resets at the backend", total, allowed, gone, got)
}

// TestDurableAuditFailureRefusesResets: while the audit file cannot be
// written, resets are refused with 503 and none reaches the backend; when
// the disk is back, service resumes and the chain still verifies.
func TestDurableAuditFailureRefusesResets(t *testing.T) {
	g := startGateway(t)
	dir := g.audit.durableDir
	if code, err := resetOnce(durableURL, "bot", "fault-before", false, 0); err != nil || code != 200 {
		t.Fatalf("before the fault: %d %v", code, err)
	}

	// Break the disk: the directory goes away and a regular file takes
	// its name, so neither the open file's path nor a reopen works (this
	// works as root, where a read-only mode would not stop writes).
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
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
	auditFileStatus := func() (healthy bool, errText string, found bool) {
		for _, h := range getStatus(t).Handlers {
			if f := h.Audit.File; f != nil && f.Path == durablePath {
				return f.Healthy, f.Error, true
			}
		}
		return false, "", false
	}
	if healthy, errText, found := auditFileStatus(); !found || healthy || errText == "" {
		t.Errorf("status during the fault: found %v, healthy %v, error %q; want unhealthy with the error", found, healthy, errText)
	}

	// Repair: the directory comes back with its files.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
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
	if healthy, errText, found := auditFileStatus(); !found || !healthy || errText != "" {
		t.Errorf("status after the repair: found %v, healthy %v, error %q; want healthy", found, healthy, errText)
	}
	rep, err := audit.VerifyFiles(nil, chainFiles(t, dir)...)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstProblem != nil {
		t.Fatalf("chain broken after the fault: %+v", *rep.FirstProblem)
	}
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
	files := chainFiles(t, g.audit.rotateDir)
	if len(files) < 3 {
		t.Fatalf("only %d files: rotation did not happen", len(files))
	}
	if got := countLines(t, files); got != total {
		t.Fatalf("%d records across %d files, want %d", got, len(files), total)
	}
	rep, err := audit.VerifyFiles(nil, files...)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FirstProblem != nil {
		t.Fatalf("chain broken across rotation: %+v", *rep.FirstProblem)
	}
	t.Logf("%d records in %d files, chain verified", total, len(files))
}
