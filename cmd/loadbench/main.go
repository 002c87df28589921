// Command loadbench measures what reset_guard costs: it drives a bare
// reverse_proxy gateway and a reset_guard gateway, both in front of the
// same loopback stand-in for SuperOffice, alternately with the same load,
// and prints requests/s, latency percentiles, gateway CPU µs per request
// and peak RSS for each, with the guarded/bare ratios and the guarded
// gateway's extra CPU per request.
//
//	go run ./cmd/loadbench                       # from the repository root
//	go run ./cmd/loadbench -duration 10s -json bench.json
//	go run ./cmd/loadbench -soak 60s             # RSS over a long guarded run
//	go run ./cmd/loadbench -workloads allowed_reset_jwt -fsync always
//
// The allowed reset runs twice: as a JWT-bearer bot (allowed_reset_jwt: a
// fresh RSA key, its JWKS file and an RS256 token made at start) and as a
// Basic user with a backend principal lookup (allowed_reset). With
// -fsync always or interval, the guarded gateway's fsync calls are
// counted with perf, where perf can attach, and reported per request.
//
// Each gateway is this binary re-executed as a Caddy process (the
// standard modules plus reset_guard), so that its CPU time and RSS are
// read from /proc for that process alone. The load generator and the
// stand-in backend run in this process, on the same machine: their cost
// is the same for both gateways.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
	flag.DurationVar(&opts.soak, "soak", 0, "after the rounds, drive -soak-workload at the guarded gateway this long and sample its RSS every second")
	flag.StringVar(&opts.policy, "policy", "testdata/policies/handoff", "policy directory for reset_guard")
	flag.StringVar(&opts.query, "query", "data.resetguard.handoff.decision", "policy query")
	flag.StringVar(&opts.entity, "entity", "testdata/entities/reset.json", "ChatSessionEntity the backend answers Reset with")
	flag.StringVar(&opts.fsync, "fsync", "never", "durable audit file fsync mode: always, interval or never")
	only := flag.String("workloads", strings.Join(workloadNames, ","), "comma-separated workloads to run, of "+strings.Join(workloadNames, ", "))
	// The soak's default is the JWT workload: the RSS target
	// belongs to its JWT-bearer figures, and a verified-token cache is
	// the new state that could grow.
	flag.StringVar(&opts.soakWorkload, "soak-workload", allowedResetJWT, "the workload -soak drives (it need not be among -workloads)")
	flag.StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the guarded gateway during its first phase of -cpuprofile-workload to this file")
	flag.StringVar(&opts.profileWorkload, "cpuprofile-workload", "", "the workload -cpuprofile profiles (default: allowed_reset_jwt, else allowed_reset, else the first of -workloads)")
	flag.BoolVar(&opts.countFsyncs, "count-fsyncs", true, "unless -fsync is never, count the guarded gateway's fsync calls per request with perf (skipped with a note where perf cannot attach)")
	flag.Parse()
	var err error
	if opts.workloads, err = parseWorkloads(*only); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: -workloads:", err)
		os.Exit(2)
	}
	if !slices.Contains(workloadNames, opts.soakWorkload) {
		fmt.Fprintln(os.Stderr, "loadbench: -soak-workload: unknown workload", opts.soakWorkload)
		os.Exit(2)
	}
	if opts.profileWorkload == "" {
		opts.profileWorkload = defaultProfiled(opts.workloads)
	}
	if opts.cpuProfile != "" && !slices.Contains(opts.workloads, opts.profileWorkload) {
		fmt.Fprintf(os.Stderr, "loadbench: -cpuprofile-workload %s is not among -workloads\n", opts.profileWorkload)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration, warmup, soak        time.Duration
	concurrency, rounds           int
	jsonOut                       string
	policy, query, entity         string
	fsync, cpuProfile             string
	workloads                     []string
	soakWorkload, profileWorkload string
	// countFsyncs: count the guarded gateway's fsyncs with perf; run
	// clears it when -fsync is never or perf cannot attach.
	countFsyncs bool
	dir         string // the run's scratch directory
}

// defaultProfiled picks the workload -cpuprofile profiles: an allowed
// reset, the JWT one first (the profile is of JWT-bearer
// resets), since that is where the guard does the most.
func defaultProfiled(selected []string) string {
	for _, n := range []string{allowedResetJWT, allowedReset} {
		if slices.Contains(selected, n) {
			return n
		}
	}
	return selected[0]
}

// parseWorkloads reads -workloads: known names, each once.
func parseWorkloads(list string) ([]string, error) {
	var names []string
	for n := range strings.SplitSeq(list, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
			continue
		case !slices.Contains(workloadNames, n):
			return nil, fmt.Errorf("unknown workload %q (known: %s)", n, strings.Join(workloadNames, ", "))
		case slices.Contains(names, n):
			return nil, fmt.Errorf("workload %q named twice", n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, errors.New("no workload named")
	}
	return names, nil
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
	o.dir = dir
	jwks, token, err := botToken(dir)
	if err != nil {
		return err
	}
	workloads := newWorkloads(o.workloads, token)
	soakWorkload := newWorkloads([]string{o.soakWorkload}, token)[0]

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
	guarded, err := startGateway(dir, "guarded", guardedConfig(backendAddr, policy, o.query, jwks, filepath.Join(dir, "audit.log"), o.fsync))
	if err != nil {
		return err
	}
	defer guarded.stop()

	// fsync never makes no fsync to count.
	o.countFsyncs = o.countFsyncs && o.fsync != "never"
	if o.countFsyncs {
		if err := probeFsyncCounter(guarded.cmd.Process.Pid, filepath.Join(dir, "perf.out")); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench: not counting fsyncs:", err)
			o.countFsyncs = false
		}
	}

	results, err := runRounds(o, workloads, bare, guarded)
	if err != nil {
		return err
	}
	rep := summarize(o, workloads, results)
	if o.soak > 0 {
		if rep.Soak, err = soak(o, guarded, soakWorkload); err != nil {
			return err
		}
	}
	if n, err := auditLines(filepath.Join(dir, "audit.log")); err == nil {
		fmt.Fprintf(os.Stderr, "durable audit file: %d records\n", n)
	}
	printTable(os.Stdout, rep)
	if o.jsonOut != "" {
		return writeJSON(o.jsonOut, rep)
	}
	return nil
}

// runRounds runs every workload on both gateways o.rounds times, their
// order swapped every other round so that neither always goes first, and
// returns the results by "workload/gateway".
func runRounds(o options, workloads []workload, bare, guarded *gateway) (map[string]*Result, error) {
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
					return nil, err
				}
			}
		}
	}
	return results, nil
}
