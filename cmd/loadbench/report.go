package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"text/tabwriter"
	"time"
)

// Result is one gateway under one workload, summed over the rounds.
type Result struct {
	Workload   string  `json:"workload"`
	Gateway    string  `json:"gateway"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	CPUPer1000 float64 `json:"cpu_s_per_1000"`
	// CPUusPerRequest is the same figure per request: the gateway
	// process's user+system CPU, read from /proc in 10 ms ticks, so its
	// resolution is 10 ms divided by the requests.
	CPUusPerRequest float64 `json:"cpu_us_per_request"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	// Fsyncs is the fsync calls the gateway made during the measured
	// phases, and FsyncsPerRequest those per request; both absent when
	// not counted (-fsync never, the bare gateway, perf unavailable).
	Fsyncs           *int64   `json:"fsyncs,omitempty"`
	FsyncsPerRequest *float64 `json:"fsyncs_per_request,omitempty"`

	latencies     []time.Duration
	cpu           float64
	fsyncs        int64
	fsyncsCounted bool
}

// Ratio compares the guarded gateway with the bare one under one workload.
type Ratio struct {
	Workload string  `json:"workload"`
	RPS      float64 `json:"rps_guarded_over_bare"`
	CPU      float64 `json:"cpu_guarded_over_bare"`
	// CPU µs per request of each gateway and what guarding adds: the
	// issue's CPU target is this difference, not the ratio.
	CPUusBare     float64 `json:"cpu_us_per_request_bare"`
	CPUusGuarded  float64 `json:"cpu_us_per_request_guarded"`
	CPUusOverhead float64 `json:"cpu_us_per_request_guarded_minus_bare"`
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
	Workload    string  `json:"workload"`
	Seconds     float64 `json:"seconds"`
	Requests    int     `json:"requests"`
	RSSBytes    []int64 `json:"rss_bytes_per_second"`
	AfterWarmup int64   `json:"rss_after_warmup_bytes"`
	AtEnd       int64   `json:"rss_at_end_bytes"`
	MaxAfter    int64   `json:"rss_max_after_warmup_bytes"`
}

func (r *Result) finish() {
	slices.Sort(r.latencies)
	r.Requests = len(r.latencies)
	if r.Seconds > 0 {
		r.RPS = float64(r.Requests) / r.Seconds
	}
	if r.Requests > 0 {
		r.CPUPer1000 = r.cpu / float64(r.Requests) * 1000
		r.CPUusPerRequest = r.cpu / float64(r.Requests) * 1e6
	}
	if r.fsyncsCounted {
		n := r.fsyncs
		r.Fsyncs = &n
		if r.Requests > 0 {
			per := float64(n) / float64(r.Requests)
			r.FsyncsPerRequest = &per
		}
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
	// The fsyncs column only when something was counted.
	counted := slices.ContainsFunc(rep.Results, func(r *Result) bool { return r.Fsyncs != nil })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "workload\tgateway\trequests\treq/s\tp50 µs\tp90 µs\tp99 µs\tCPU µs/req\t"
	if counted {
		head += "fsyncs/req\t"
	}
	fmt.Fprintln(tw, head+"peak RSS MiB\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t", r.Workload, r.Gateway, r.Requests, r.RPS,
			r.P50us, r.P90us, r.P99us, r.CPUusPerRequest)
		if counted {
			if r.FsyncsPerRequest != nil {
				fmt.Fprintf(tw, "%.3f\t", *r.FsyncsPerRequest)
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintf(tw, "%.1f\t\n", mib(r.PeakRSSBytes))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\treq/s guarded/bare\tCPU guarded/bare\tCPU µs/req bare\tguarded\tguarded−bare\tp50 overhead µs\tp99 overhead µs\t")
	for _, r := range rep.Ratios {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%.0f\t%.0f\t%+.0f\t%.0f\t%.0f\t\n", r.Workload, r.RPS, r.CPU,
			r.CPUusBare, r.CPUusGuarded, r.CPUusOverhead, r.P50OverheadUs, r.P99OverheadUs)
	}
	tw.Flush()
	if s := rep.Soak; s != nil {
		fmt.Fprintf(w, "\nsoak: %d requests of %s in %.0fs; guarded RSS after warm-up %.1f MiB, max after %.1f MiB, at end %.1f MiB\n",
			s.Requests, s.Workload, s.Seconds, mib(s.AfterWarmup), mib(s.MaxAfter), mib(s.AtEnd))
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// summarize finishes the results and sets each workload's guarded result
// beside its bare one.
func summarize(o options, workloads []workload, results map[string]*Result) *Report {
	rep := &Report{Time: time.Now().UTC(), GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Concurrency: o.concurrency,
		Duration: o.duration.String(), Rounds: o.rounds, Fsync: o.fsync}
	for _, wl := range workloads {
		b, g := results[wl.Name+"/bare"], results[wl.Name+"/guarded"]
		for _, r := range []*Result{b, g} {
			r.finish()
			rep.Results = append(rep.Results, r)
		}
		rep.Ratios = append(rep.Ratios, compare(wl.Name, b, g))
	}
	return rep
}

// compare sets a workload's finished guarded result against its bare one.
func compare(name string, bare, guarded *Result) Ratio {
	return Ratio{Workload: name,
		RPS: guarded.RPS / bare.RPS, CPU: guarded.CPUPer1000 / bare.CPUPer1000,
		CPUusBare: bare.CPUusPerRequest, CPUusGuarded: guarded.CPUusPerRequest,
		CPUusOverhead: guarded.CPUusPerRequest - bare.CPUusPerRequest,
		P50OverheadUs: guarded.P50us - bare.P50us, P99OverheadUs: guarded.P99us - bare.P99us}
}

// writeJSON writes rep to path, or to stdout for "-".
func writeJSON(path string, rep *Report) error {
	out, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(out)
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
