// Command loadbench measures what reset_guard costs: it drives a bare
// reverse_proxy gateway and a reset_guard gateway, both in front of the
// same loopback stand-in for SuperOffice, alternately with the same load,
// and prints requests/s, latency percentiles, gateway CPU per 1 000
// requests and peak RSS for each, with the guarded/bare ratios.
//
//	go run ./cmd/loadbench                       # from the repository root
//	go run ./cmd/loadbench -duration 10s -json bench.json
//	go run ./cmd/loadbench -soak 60s             # RSS over a long guarded run
//
// Each gateway is this binary re-executed as a Caddy process (the
// standard modules plus reset_guard), so that its CPU time and RSS are
// read from /proc for that process alone. The load generator and the
// stand-in backend run in this process, on the same machine: their cost
// is the same for both gateways.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/resetguard/caddy-resetguard"
)

// gatewayArg re-executes this binary as a Caddy gateway.
const gatewayArg = "__gateway"

func main() {
	if len(os.Args) > 1 && os.Args[1] == gatewayArg {
		caddy.CustomBinaryName = "loadbench-gateway"
		os.Args = append(os.Args[:1:1], os.Args[2:]...)
		caddycmd.Main()
		return
	}
	opts := options{}
	flag.DurationVar(&opts.duration, "duration", 5*time.Second, "measured time per phase")
	flag.DurationVar(&opts.warmup, "warmup", time.Second, "unmeasured load before each phase")
	flag.IntVar(&opts.concurrency, "concurrency", 16, "concurrent keep-alive clients")
	flag.IntVar(&opts.rounds, "rounds", 2, "rounds; each runs every workload on both gateways, in alternating order")
	flag.StringVar(&opts.jsonOut, "json", "", "also write the results as JSON to this file (- for stdout)")
	flag.DurationVar(&opts.soak, "soak", 0, "after the rounds, drive guarded allowed resets this long and sample the guarded gateway's RSS every second")
	flag.StringVar(&opts.policy, "policy", "testdata/policies/handoff", "policy directory for reset_guard")
	flag.StringVar(&opts.query, "query", "data.resetguard.handoff.decision", "policy query")
	flag.StringVar(&opts.entity, "entity", "testdata/entities/reset.json", "ChatSessionEntity the backend answers Reset with")
	flag.StringVar(&opts.fsync, "fsync", "never", "durable audit file fsync mode: always, interval or never")
	only := flag.String("workloads", "", "comma-separated workloads to run (default all: allowed_reset,denied_reset,pass_through)")
	flag.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the guarded gateway during its first allowed_reset phase to this file")
	flag.Parse()
	if *only != "" {
		keep := strings.Split(*only, ",")
		workloads = slices.DeleteFunc(workloads, func(w workload) bool { return !slices.Contains(keep, w.Name) })
		if len(workloads) != len(keep) {
			fmt.Fprintln(os.Stderr, "loadbench: -workloads: unknown workload in", *only)
			os.Exit(2)
		}
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration, warmup, soak time.Duration
	concurrency, rounds    int
	jsonOut                string
	policy, query, entity  string
	fsync, cpuProfile      string
}

// workload is one kind of request sent to both gateways.
type workload struct {
	Name   string
	method string
	path   string
	user   string // Basic user; the example policy lists "chatbot" as a bot
	want   int    // the status the guarded gateway must answer
}

var workloads = []workload{
	{Name: "allowed_reset", method: http.MethodPost, path: "/api/v1/ChatSession/427/Reset", user: "chatbot", want: http.StatusOK},
	{Name: "denied_reset", method: http.MethodPost, path: "/api/v1/ChatSession/427/Reset", user: "agent7", want: http.StatusForbidden},
	{Name: "pass_through", method: http.MethodGet, path: "/api/v1/ChatSession/427", user: "agent7", want: http.StatusOK},
}

// Result is one gateway under one workload, summed over the rounds.
type Result struct {
	Workload     string  `json:"workload"`
	Gateway      string  `json:"gateway"`
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	Seconds      float64 `json:"seconds"`
	RPS          float64 `json:"rps"`
	P50us        float64 `json:"p50_us"`
	P90us        float64 `json:"p90_us"`
	P99us        float64 `json:"p99_us"`
	CPUPer1000   float64 `json:"cpu_s_per_1000"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`

	latencies []time.Duration
	cpu       float64
}

// Ratio compares the guarded gateway with the bare one under one workload.
type Ratio struct {
	Workload      string  `json:"workload"`
	RPS           float64 `json:"rps_guarded_over_bare"`
	CPU           float64 `json:"cpu_guarded_over_bare"`
	P50OverheadUs float64 `json:"p50_overhead_us"`
	P99OverheadUs float64 `json:"p99_overhead_us"`
}

// Report is the JSON output.
type Report struct {
	Time        time.Time `json:"time"`
	GoVersion   string    `json:"go_version"`
	CPUs        int       `json:"cpus"`
	Concurrency int       `json:"concurrency"`
	Duration    string    `json:"duration_per_phase"`
	Rounds      int       `json:"rounds"`
	Fsync       string    `json:"audit_fsync"`
	Results     []*Result `json:"results"`
	Ratios      []Ratio   `json:"ratios"`
	Soak        *Soak     `json:"soak,omitempty"`
}

// Soak is the guarded gateway's RSS sampled during a long run.
type Soak struct {
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	RSSBytes    []int64 `json:"rss_bytes_per_second"`
	AfterWarmup int64   `json:"rss_after_warmup_bytes"`
	AtEnd       int64   `json:"rss_at_end_bytes"`
	MaxAfter    int64   `json:"rss_max_after_warmup_bytes"`
}

func run(o options) error {
	if runtime.GOOS != "linux" {
		return errors.New("reads CPU time and RSS from /proc: Linux only")
	}
	entity, err := os.ReadFile(o.entity)
	if err != nil {
		return fmt.Errorf("reading the entity (run from the repository root): %w", err)
	}
	policy, err := filepath.Abs(o.policy)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	backendAddr, stopBackend, err := startBackend(entity)
	if err != nil {
		return err
	}
	defer stopBackend()

	bare, err := startGateway(dir, "bare", bareConfig(backendAddr))
	if err != nil {
		return err
	}
	defer bare.stop()
	guarded, err := startGateway(dir, "guarded", guardedConfig(backendAddr, policy, o.query, filepath.Join(dir, "audit.log"), o.fsync))
	if err != nil {
		return err
	}
	defer guarded.stop()

	gateways := []*gateway{bare, guarded}
	results := map[string]*Result{}
	for _, wl := range workloads {
		for _, g := range gateways {
			results[wl.Name+"/"+g.name] = &Result{Workload: wl.Name, Gateway: g.name}
		}
	}
	for round := range o.rounds {
		for _, wl := range workloads {
			order := gateways
			if round%2 == 1 {
				order = []*gateway{guarded, bare}
			}
			for _, g := range order {
				fmt.Fprintf(os.Stderr, "round %d: %s on %s\n", round+1, wl.Name, g.name)
				if err := phase(o, g, wl, results[wl.Name+"/"+g.name]); err != nil {
					return err
				}
			}
		}
	}

	rep := &Report{Time: time.Now().UTC(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Concurrency: o.concurrency,
		Duration: o.duration.String(), Rounds: o.rounds, Fsync: o.fsync}
	for _, wl := range workloads {
		b, g := results[wl.Name+"/bare"], results[wl.Name+"/guarded"]
		for _, r := range []*Result{b, g} {
			r.finish()
			rep.Results = append(rep.Results, r)
		}
		rep.Ratios = append(rep.Ratios, Ratio{Workload: wl.Name, RPS: g.RPS / b.RPS, CPU: g.CPUPer1000 / b.CPUPer1000,
			P50OverheadUs: g.P50us - b.P50us, P99OverheadUs: g.P99us - b.P99us})
	}
	if o.soak > 0 {
		if rep.Soak, err = soak(o, guarded); err != nil {
			return err
		}
	}
	if n, err := auditLines(filepath.Join(dir, "audit.log")); err == nil {
		fmt.Fprintf(os.Stderr, "durable audit file: %d records\n", n)
	}
	printTable(os.Stdout, rep)
	if o.jsonOut != "" {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		out = append(out, '\n')
		if o.jsonOut == "-" {
			_, err = os.Stdout.Write(out)
			return err
		}
		return os.WriteFile(o.jsonOut, out, 0o644)
	}
	return nil
}

// startBackend serves Reset with the entity and the read of a session
// with the same, and the principal lookup with a SoPrincipalCarrier.
func startBackend(entity []byte) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	principal := []byte(`{"UserType":"SystemAssociate","AssociateId":9,"Associate":"chatbot","RoleName":"Bots","Licenses":[],"FunctionRights":[]}`)
	contentLength := strconv.Itoa(len(entity))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		if strings.HasSuffix(r.URL.Path, "/currentPrincipal") {
			h.Set("Content-Length", strconv.Itoa(len(principal)))
			_, _ = w.Write(principal)
			return
		}
		h.Set("Content-Length", contentLength)
		_, _ = w.Write(entity)
	})}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

type gateway struct {
	name  string
	addr  string
	admin string // Caddy's admin endpoint, for /debug/pprof
	cmd   *exec.Cmd
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startGateway(dir, name string, cfg func(listen string) map[string]any) (*gateway, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	c := cfg(addr)
	c["admin"] = map[string]any{"listen": admin, "config": map[string]any{"persist": false}}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, gatewayArg, "run", "--config", path)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logf, logf
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &gateway{name: name, addr: addr, admin: admin, cmd: cmd}
	for range 100 {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return g, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.stop()
	log, _ := os.ReadFile(logf.Name())
	return nil, fmt.Errorf("gateway %s did not start:\n%s", name, log)
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = g.cmd.Process.Kill()
		<-done
	}
}

func baseConfig(listen string, handlers ...map[string]any) map[string]any {
	return map[string]any{
		"logging": map[string]any{"logs": map[string]any{
			"default": map[string]any{"level": "ERROR", "exclude": []string{"http.handlers.reset_guard.audit"}},
			// The Caddy-logger copy of every record is encoded as in
			// production, then discarded: the durable file keeps them.
			"audit": map[string]any{"writer": map[string]any{"output": "discard"}, "encoder": map[string]any{"format": "json"},
				"include": []string{"http.handlers.reset_guard.audit"}},
		}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"gw": map[string]any{
			"listen": []string{listen},
			"routes": []any{map[string]any{"handle": handlers}},
		}}}},
	}
}

func proxyTo(backend string) map[string]any {
	return map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": backend}}}
}

func bareConfig(backend string) func(string) map[string]any {
	return func(listen string) map[string]any { return baseConfig(listen, proxyTo(backend)) }
}

func guardedConfig(backend, policy, query, auditFile, fsync string) func(string) map[string]any {
	return func(listen string) map[string]any {
		guard := map[string]any{
			"handler":         "reset_guard",
			"policy":          map[string]any{"paths": []string{policy}, "query": query, "timeout": "100ms"},
			"fingerprint_key": "loadbench",
			"identity": map[string]any{"principal_lookup": map[string]any{
				"upstream": "http://" + backend, "timeout": "2s", "ttl": "10m", "max_entries": 10000}},
			"audit": map[string]any{"file": map[string]any{"path": auditFile, "fsync": fsync, "fsync_interval": "1s"}},
		}
		return baseConfig(listen, guard, proxyTo(backend))
	}
}

// phase warms up, then drives g with wl for o.duration and adds what it
// measured to res.
func phase(o options, g *gateway, wl workload, res *Result) error {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: o.concurrency, MaxIdleConnsPerHost: o.concurrency, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(wl.user+":secret"))
	url := "http://" + g.addr + wl.path
	if _, err := drive(client, o.concurrency, o.warmup, wl, url, auth, g.name == "guarded", false); err != nil {
		return fmt.Errorf("%s on %s, warm-up: %w", wl.Name, g.name, err)
	}
	cpu0, err := cpuSeconds(g.cmd.Process.Pid)
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	if o.cpuProfile != "" && g.name == "guarded" && wl.Name == "allowed_reset" && res.Requests == 0 && res.Seconds == 0 {
		go func() { profiled <- cpuProfile(g, o.duration, o.cpuProfile) }()
	} else {
		profiled <- nil
	}
	start := time.Now()
	lat, err := drive(client, o.concurrency, o.duration, wl, url, auth, g.name == "guarded", true)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", wl.Name, g.name, err)
	}
	if err := <-profiled; err != nil {
		return err
	}
	cpu1, err := cpuSeconds(g.cmd.Process.Pid)
	if err != nil {
		return err
	}
	rss, err := procStatus(g.cmd.Process.Pid, "VmHWM")
	if err != nil {
		return err
	}
	res.latencies = append(res.latencies, lat.latencies...)
	res.Errors += lat.errors
	res.Seconds += elapsed.Seconds()
	res.cpu += cpu1 - cpu0
	res.PeakRSSBytes = max(res.PeakRSSBytes, rss)
	return nil
}

// cpuProfile fetches a CPU profile of the gateway from Caddy's admin
// endpoint, covering most of a phase.
func cpuProfile(g *gateway, d time.Duration, path string) error {
	secs := max(int((d-500*time.Millisecond)/time.Second), 1)
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.admin, secs))
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type driven struct {
	latencies []time.Duration
	errors    int
}

// drive runs n keep-alive clients for d. A request answered with another
// status than the workload expects (on the guarded gateway: the guard's
// answer; on the bare one: the backend's 200) counts as an error, and more
// than 1 % of errors fails the run: a benchmark of failures measures
// nothing.
func drive(client *http.Client, n int, d time.Duration, wl workload, url, auth string, guarded, keep bool) (driven, error) {
	want := http.StatusOK
	if guarded {
		want = wl.want
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var (
		mu       sync.Mutex
		all      []time.Duration
		errs     atomic.Int64
		total    atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			for ctx.Err() == nil {
				req, _ := http.NewRequest(wl.method, url, nil)
				req.Header.Set("Authorization", auth)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != want {
						err = fmt.Errorf("status %d, want %d", resp.StatusCode, want)
					}
				}
				el := time.Since(t0)
				total.Add(1)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				if keep {
					lat = append(lat, el)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	out := driven{latencies: all, errors: int(errs.Load())}
	if t := total.Load(); t == 0 || errs.Load()*100 > t {
		return out, fmt.Errorf("%d of %d requests failed, first: %v", errs.Load(), t, firstErr.Load())
	}
	return out, nil
}

func (r *Result) finish() {
	slices.Sort(r.latencies)
	r.Requests = len(r.latencies)
	if r.Seconds > 0 {
		r.RPS = float64(r.Requests) / r.Seconds
	}
	if r.Requests > 0 {
		r.CPUPer1000 = r.cpu / float64(r.Requests) * 1000
	}
	r.P50us, r.P90us, r.P99us = pct(r.latencies, 0.50), pct(r.latencies, 0.90), pct(r.latencies, 0.99)
}

func pct(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// soak drives allowed resets at the guarded gateway for o.soak and
// samples its RSS each second.
func soak(o options, g *gateway) (*Soak, error) {
	fmt.Fprintf(os.Stderr, "soak: %s of allowed resets on guarded\n", o.soak)
	s := &Soak{}
	done := make(chan struct{})
	var samples []int64
	var sampleErr error
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for i := 0; i < int(o.soak/time.Second); i++ {
			<-t.C
			rss, err := procStatus(g.cmd.Process.Pid, "VmRSS")
			if err != nil {
				sampleErr = err
				return
			}
			samples = append(samples, rss)
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: o.concurrency, MaxIdleConnsPerHost: o.concurrency}}
	defer client.CloseIdleConnections()
	wl := workloads[0]
	start := time.Now()
	d, err := drive(client, o.concurrency, o.soak, wl, "http://"+g.addr+wl.path,
		"Basic "+base64.StdEncoding.EncodeToString([]byte(wl.user+":secret")), true, true)
	<-done
	if err != nil {
		return nil, fmt.Errorf("soak: %w", err)
	}
	if sampleErr != nil {
		return nil, sampleErr
	}
	s.Seconds, s.Requests, s.RSSBytes = time.Since(start).Seconds(), len(d.latencies), samples
	if len(samples) > 0 {
		warm := min(len(samples)-1, 10) // the first ten seconds are warm-up
		s.AfterWarmup, s.AtEnd = samples[warm], samples[len(samples)-1]
		s.MaxAfter = slices.Max(samples[warm:])
	}
	return s, nil
}

// cpuSeconds is a process's user+system CPU time, from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading gateway CPU time: %w", err)
	}
	// The command name may hold spaces; the fields follow its ')'.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat line")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clockTicks = 100 // USER_HZ on Linux
	return (ut + st) / clockTicks, nil
}

// procStatus reads a kB figure such as VmRSS or VmHWM from
// /proc/PID/status, in bytes.
func procStatus(pid int, key string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading gateway memory: %w", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", key, pid)
}

func auditLines(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return bytes.Count(raw, []byte{'\n'}), nil
}

func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%d clients, %s x %d rounds per gateway and workload, %d CPUs, %s, audit fsync %s\n\n",
		rep.Concurrency, rep.Duration, rep.Rounds, rep.CPUs, rep.GoVersion, rep.Fsync)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tgateway\trequests\treq/s\tp50 µs\tp90 µs\tp99 µs\tCPU s/1000\tpeak RSS MiB\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.3f\t%.1f\t\n", r.Workload, r.Gateway, r.Requests, r.RPS,
			r.P50us, r.P90us, r.P99us, r.CPUPer1000, float64(r.PeakRSSBytes)/(1<<20))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\treq/s guarded/bare\tCPU guarded/bare\tp50 overhead µs\tp99 overhead µs\t")
	for _, r := range rep.Ratios {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%.0f\t%.0f\t\n", r.Workload, r.RPS, r.CPU, r.P50OverheadUs, r.P99OverheadUs)
	}
	tw.Flush()
	if s := rep.Soak; s != nil {
		fmt.Fprintf(w, "\nsoak: %d allowed resets in %.0fs; guarded RSS after warm-up %.1f MiB, max after %.1f MiB, at end %.1f MiB\n",
			s.Requests, s.Seconds, mib(s.AfterWarmup), mib(s.MaxAfter), mib(s.AtEnd))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
