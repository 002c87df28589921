package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

// A result's per-request CPU and fsyncs, and the guarded-minus-bare CPU,
// from summed phase figures.
func TestFinishAndCompare(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		name             string
		bare, guarded    Result
		wantBareUs       float64
		wantGuardedUs    float64
		wantOverheadUs   float64
		wantCPURatio     float64
		wantRPSRatio     float64
		wantFsyncsPerReq float64 // of the guarded result; <0: not counted
		wantP50Overhead  float64
	}{
		{
			name: "allowed reset, fsyncs counted",
			// 4 requests in 2 s; 0.0005 s CPU = 125 µs each.
			bare: Result{Seconds: 2, cpu: 0.0005, latencies: []time.Duration{4 * ms, 1 * ms, 2 * ms, 3 * ms}},
			// 2 requests in 2 s; 0.0012 s CPU = 600 µs each; 1 fsync.
			guarded:          Result{Seconds: 2, cpu: 0.0012, fsyncs: 1, fsyncsCounted: true, latencies: []time.Duration{5 * ms, 3 * ms}},
			wantBareUs:       125,
			wantGuardedUs:    600,
			wantOverheadUs:   475,
			wantCPURatio:     4.8,
			wantRPSRatio:     0.5,
			wantFsyncsPerReq: 0.5,
			wantP50Overhead:  1000, // 3 ms against 2 ms
		},
		{
			name:             "guarding cheaper than proxying",
			bare:             Result{Seconds: 1, cpu: 0.002, latencies: []time.Duration{ms, ms}},
			guarded:          Result{Seconds: 1, cpu: 0.0018, latencies: []time.Duration{ms, ms}},
			wantBareUs:       1000,
			wantGuardedUs:    900,
			wantOverheadUs:   -100,
			wantCPURatio:     0.9,
			wantRPSRatio:     1,
			wantFsyncsPerReq: -1,
		},
		{
			name:             "counted, none made",
			bare:             Result{Seconds: 1, cpu: 0.001, latencies: []time.Duration{ms}},
			guarded:          Result{Seconds: 1, cpu: 0.001, fsyncsCounted: true, latencies: []time.Duration{ms}},
			wantBareUs:       1000,
			wantGuardedUs:    1000,
			wantCPURatio:     1,
			wantRPSRatio:     1,
			wantFsyncsPerReq: 0,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, g := tc.bare, tc.guarded
			b.finish()
			g.finish()
			r := compare("w", &b, &g)
			for _, c := range []struct {
				what      string
				got, want float64
			}{
				{"bare µs/req", b.CPUusPerRequest, tc.wantBareUs},
				{"guarded µs/req", g.CPUusPerRequest, tc.wantGuardedUs},
				{"bare s/1000", b.CPUPer1000, tc.wantBareUs / 1000},
				{"ratio bare µs/req", r.CPUusBare, tc.wantBareUs},
				{"ratio guarded µs/req", r.CPUusGuarded, tc.wantGuardedUs},
				{"guarded−bare µs/req", r.CPUusOverhead, tc.wantOverheadUs},
				{"CPU ratio", r.CPU, tc.wantCPURatio},
				{"req/s ratio", r.RPS, tc.wantRPSRatio},
				{"p50 overhead", r.P50OverheadUs, tc.wantP50Overhead},
			} {
				if !near(c.got, c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if b.Fsyncs != nil || b.FsyncsPerRequest != nil {
				t.Errorf("bare fsyncs reported though not counted")
			}
			switch {
			case tc.wantFsyncsPerReq < 0 && (g.Fsyncs != nil || g.FsyncsPerRequest != nil):
				t.Errorf("guarded fsyncs reported though not counted")
			case tc.wantFsyncsPerReq >= 0 && (g.FsyncsPerRequest == nil || !near(*g.FsyncsPerRequest, tc.wantFsyncsPerReq)):
				t.Errorf("guarded fsyncs/request = %v, want %v", g.FsyncsPerRequest, tc.wantFsyncsPerReq)
			}
		})
	}
}

// The text table shows µs per request and the difference, and the fsync
// column only when fsyncs were counted.
func TestPrintTable(t *testing.T) {
	one, half := int64(1), 0.5
	rep := &Report{
		Results: []*Result{
			{Workload: "allowed_reset_jwt", Gateway: "bare", CPUusPerRequest: 125},
			{Workload: "allowed_reset_jwt", Gateway: "guarded", CPUusPerRequest: 600, Fsyncs: &one, FsyncsPerRequest: &half},
		},
		Ratios: []Ratio{{Workload: "allowed_reset_jwt", CPUusBare: 125, CPUusGuarded: 600, CPUusOverhead: 475}},
	}
	var out bytes.Buffer
	printTable(&out, rep)
	for _, want := range []string{"CPU µs/req", "fsyncs/req", "0.500", "guarded−bare", "+475"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	rep.Results[1].Fsyncs, rep.Results[1].FsyncsPerRequest = nil, nil
	out.Reset()
	printTable(&out, rep)
	if strings.Contains(out.String(), "fsyncs/req") {
		t.Errorf("fsync column without counts:\n%s", out.String())
	}
}
