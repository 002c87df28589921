//go:build unix

package integration_test

// The real processes of the crash test (crash_test.go): the gateway binary
// built from cmd/resetguard, run, killed and restarted on one audit file,
// and the slow stand-in backend that counts the resets it executed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// buildCrashGateway builds cmd/resetguard into a temporary directory and
// returns the binary's path. CGO_ENABLED=0 matches CI's vet and gateway
// builds, so a warm build cache makes this little more than a link.
func buildCrashGateway(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD: not inside a module (%q)", gomod)
	}
	bin := filepath.Join(t.TempDir(), "resetguard")
	start := time.Now()
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/resetguard")
	build.Dir = filepath.Dir(gomod)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/resetguard: %v\n%s", err, out)
	}
	t.Logf("built the gateway binary in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// crashResetPath matches the REST reset the load sends, as the backend
// receives it.
var crashResetPath = regexp.MustCompile(`(?i)/api/v1/ChatSession/([0-9]+)/Reset$`)

// crashBackend is a slow SuperOffice stand-in. A reset counts as executed
// the moment its handler starts, before the delay: a real backend may
// have reset the session by then even if it never answers, so that is
// the point after which the gateway must already hold a durable intent.
type crashBackend struct {
	srv    *httptest.Server
	entity map[string]any // ../testdata/entities/reset.json, read-only

	mu       sync.Mutex
	executed map[string]int // X-Request-Id as received -> times executed
	// early lists the resets that arrived before their intent was in the
	// audit file: the write-ahead rule checked on every request, not only
	// on the ones a kill cuts.
	early []string
	trail crashTail

	total    atomic.Int64
	inflight atomic.Int64
	// started gets a token after each reset starts; a waiter rechecks
	// total on every token (one buffered token is enough not to miss one).
	started chan struct{}
}

func newCrashBackend(t *testing.T, auditPath string) *crashBackend {
	t.Helper()
	raw, err := os.ReadFile("../testdata/entities/reset.json")
	if err != nil {
		t.Fatal(err)
	}
	b := &crashBackend{executed: map[string]int{}, started: make(chan struct{}, 1)}
	b.trail = crashTail{path: auditPath, intents: map[string]bool{}}
	if err := json.Unmarshal(raw, &b.entity); err != nil {
		t.Fatal(err)
	}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *crashBackend) serve(w http.ResponseWriter, r *http.Request) {
	m := crashResetPath.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodPost || m == nil {
		// The readiness probe (GET /) lands here: it is not a reset.
		http.Error(w, `{"Error": true, "ErrorType": "SoNotFoundException"}`, http.StatusNotFound)
		return
	}
	id, _ := strconv.Atoi(m[1])
	rid := r.Header.Get("X-Request-Id")
	b.mu.Lock()
	b.executed[rid]++
	if !b.trail.hasIntent(rid) {
		b.early = append(b.early, rid)
	}
	b.mu.Unlock()
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	b.total.Add(1)
	select {
	case b.started <- struct{}{}:
	default:
	}
	// 50–150 ms, spread by id so that requests finish out of order.
	delay := time.Duration(50+id%101) * time.Millisecond
	select {
	case <-time.After(delay):
	case <-r.Context().Done(): // the gateway died: nobody reads the answer
		return
	}
	entity := maps.Clone(b.entity)
	entity["ChatSessionId"] = id
	body, err := json.Marshal(entity)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(body)
}

// waitTotal returns once the backend has started target resets in all, or
// the gateway exited, or ctx ended.
func (b *crashBackend) waitTotal(ctx context.Context, target int64, gatewayDone <-chan struct{}) error {
	for b.total.Load() < target {
		select {
		case <-b.started:
		case <-gatewayDone:
			return errors.New("the gateway exited under load")
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d resets at the backend (have %d): %w", target, b.total.Load(), ctx.Err())
		}
	}
	return nil
}

// executedIDs returns a copy of the executed request ids. Call it after
// srv.Close, which waits for every handler.
func (b *crashBackend) executedIDs() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.executed)
}

// earlyIDs returns the resets that reached the backend before their intent
// was in the file. Call it after srv.Close.
func (b *crashBackend) earlyIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.early)
}

// crashTail follows the durable audit file from the backend's side and
// collects the request ids of its intent records. It reads only what was
// appended since its last look, so each request costs little.
type crashTail struct {
	path    string
	last    os.FileInfo // the file read so far, to notice a new one
	offset  int64       // bytes of complete lines read
	intents map[string]bool
}

func (c *crashTail) hasIntent(id string) bool {
	if !c.intents[id] {
		c.catchUp()
	}
	return c.intents[id]
}

// catchUp reads the complete lines appended since the last call. A file
// replaced under the path (rotation) is read from its start.
func (c *crashTail) catchUp() {
	f, err := os.Open(c.path)
	if err != nil {
		return // not created yet: no intent is there
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	if (c.last != nil && !os.SameFile(c.last, fi)) || fi.Size() < c.offset {
		c.offset = 0
	}
	c.last = fi
	b := make([]byte, fi.Size()-c.offset)
	n, _ := f.ReadAt(b, c.offset)
	b = b[:bytes.LastIndexByte(b[:n], '\n')+1]
	c.offset += int64(len(b))
	for line := range bytes.Lines(b) {
		var r crashRecord
		if json.Unmarshal(line, &r) == nil && r.ResetGuard.Kind == "intent" {
			c.intents[r.HTTP.Request.ID] = true
		}
	}
}

// crashGateway is one run of the gateway binary.
type crashGateway struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string // host:port of the guarded site
	stderr  string // path of the captured stderr (Caddy's own log)
	done    chan struct{}
	waitErr error // set before done is closed
}

// startCrashGateway writes the n-th Caddyfile (a fresh free port, the same
// audit file) and starts the binary on it. It does not wait for readiness.
func startCrashGateway(t *testing.T, bin, dir string, n int, backend, auditPath string) *crashGateway {
	t.Helper()
	policy, err := filepath.Abs("../testdata/policies/handoff")
	if err != nil {
		t.Fatal(err)
	}
	port := crashFreePort(t)
	config := filepath.Join(dir, fmt.Sprintf("Caddyfile.%d", n))
	text := fmt.Sprintf(crashCaddyfile, port, filepath.Join(dir, "logger-audit.jsonl"), port, policy, auditPath, backend)
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &crashGateway{t: t, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
	g.stderr = filepath.Join(dir, fmt.Sprintf("gateway.%d.stderr", n))
	stdout := crashCreate(t, filepath.Join(dir, fmt.Sprintf("gateway.%d.stdout", n)))
	stderr := crashCreate(t, g.stderr)
	g.cmd = exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	g.cmd.Dir = dir
	g.cmd.Stdout, g.cmd.Stderr = stdout, stderr
	// Caddy's config and data directories go to the temp dir, not $HOME.
	g.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(g.done)
	}()
	// A test that fails half-way must not leave a gateway behind.
	t.Cleanup(g.kill)
	return g
}

// crashCaddyfile: the admin endpoint is off (no fixed port to collide
// on), the audit records go to their own log at INFO whatever the default
// level, and the guard writes the durable file with fsync always.
const crashCaddyfile = `{
	admin off
	persist_config off
	auto_https off
	http_port %d
	log default {
		output stderr
		exclude http.handlers.reset_guard.audit
	}
	log audit {
		output file %s
		format json
		level INFO
		include http.handlers.reset_guard.audit
	}
}

http://127.0.0.1:%d {
	reset_guard {
		policy %s {
			query data.resetguard.handoff.decision
		}
		schemes basic
		audit {
			file %s {
				fsync always
			}
		}
	}
	reverse_proxy %s
}
`

func crashCreate(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// crashFreePort picks a port nothing listens on. Closing the listener
// before Caddy binds leaves a small window; another process taking the
// port then shows as a failed start with Caddy's error.
func crashFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady returns once the site answers any HTTP request (GET / is
// proxied to the backend's 404). Recovery of the audit file happens when
// the sink opens, during provisioning, so it is done by then.
func (g *crashGateway) waitReady(ctx context.Context) {
	g.t.Helper()
	probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/", nil)
		if resp, err := probe.Do(req); err == nil {
			resp.Body.Close()
			g.t.Logf("gateway on %s ready in %v", g.addr, time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-g.done:
			g.t.Fatalf("gateway exited before it answered (%v):\n%s", g.waitErr, g.stderrTail())
		case <-ctx.Done():
			g.kill()
			g.t.Fatalf("gateway did not answer on %s: %v\n%s", g.addr, ctx.Err(), g.stderrTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill sends SIGKILL (if the process still runs) and waits for it to end.
func (g *crashGateway) kill() {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Kill()
	<-g.done
}

// stop ends the gateway gracefully (SIGINT: Caddy stops its apps, which
// closes the audit sink) and requires a clean exit.
func (g *crashGateway) stop() {
	g.t.Helper()
	if err := g.cmd.Process.Signal(os.Interrupt); err != nil {
		g.t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		g.kill()
		g.t.Fatalf("gateway did not stop within 15s of SIGINT:\n%s", g.stderrTail())
	}
	if g.waitErr != nil {
		g.t.Errorf("gateway's clean stop: %v\n%s", g.waitErr, g.stderrTail())
	}
}

// stderrTail is the end of Caddy's own log, for failure messages.
func (g *crashGateway) stderrTail() string {
	b, err := os.ReadFile(g.stderr)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
