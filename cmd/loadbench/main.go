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

	results, err := runRounds(o, bare, guarded)
	if err != nil {
		return err
	}
	rep := summarize(o, results)
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
		return writeJSON(o.jsonOut, rep)
	}
	return nil
}

// runRounds runs every workload on both gateways o.rounds times, their
// order swapped every other round so that neither always goes first, and
// returns the results by "workload/gateway".
func runRounds(o options, bare, guarded *gateway) (map[string]*Result, error) {
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
