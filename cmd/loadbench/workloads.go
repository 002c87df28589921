package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// workload is one kind of request sent to both gateways.
type workload struct {
	Name   string
	method string
	path   string
	auth   string // the Authorization header
	want   int    // the status the guarded gateway must answer
}

// The workloads, in run order. allowed_reset_jwt is the headline
// case (a JWT-bearer bot, verified against a JWKS file: no backend call);
// allowed_reset is the same reset as a Basic user whose principal the
// guard looks up at the backend (cached after the first request).
const (
	allowedResetJWT = "allowed_reset_jwt"
	allowedReset    = "allowed_reset"
	deniedReset     = "denied_reset"
	passThrough     = "pass_through"
)

// workloadNames lists every workload; all run unless -workloads picks.
var workloadNames = []string{allowedResetJWT, allowedReset, deniedReset, passThrough}

// newWorkloads builds the workloads named, in workloadNames' order;
// bearer is the bot's signed JWT (botToken).
func newWorkloads(names []string, bearer string) []workload {
	basic := func(user string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":secret"))
	}
	const reset = "/api/v1/ChatSession/427/Reset"
	all := []workload{
		// The JWT bot is listed for tenant Cust12345 (see jwt.go), so its
		// reset goes to that tenant's path.
		{Name: allowedResetJWT, method: http.MethodPost, path: "/" + jwtTenant + reset, auth: "Bearer " + bearer, want: http.StatusOK},
		// The example policy lists the onsite user "chatbot" as a bot.
		{Name: allowedReset, method: http.MethodPost, path: reset, auth: basic("chatbot"), want: http.StatusOK},
		{Name: deniedReset, method: http.MethodPost, path: reset, auth: basic("agent7"), want: http.StatusForbidden},
		{Name: passThrough, method: http.MethodGet, path: "/api/v1/ChatSession/427", auth: basic("agent7"), want: http.StatusOK},
	}
	return slices.DeleteFunc(all, func(w workload) bool { return !slices.Contains(names, w.Name) })
}

// phase warms up, then drives g with wl for o.duration and adds what it
// measured to res.
func phase(o options, g *gateway, wl workload, res *Result) error {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: o.concurrency, MaxIdleConnsPerHost: o.concurrency, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}}
	defer client.CloseIdleConnections()
	url := "http://" + g.addr + wl.path
	if _, err := drive(client, o.concurrency, o.warmup, wl, url, g.name == "guarded", false); err != nil {
		return fmt.Errorf("%s on %s, warm-up: %w", wl.Name, g.name, err)
	}
	// Only the guarded gateway writes the audit file; the bare one has
	// nothing to fsync.
	var fsyncs *fsyncCounter
	if o.countFsyncs && g.name == "guarded" {
		var err error
		if fsyncs, err = startFsyncCounter(g.cmd.Process.Pid, filepath.Join(o.dir, "perf.out")); err != nil {
			return fmt.Errorf("counting fsyncs: %w", err)
		}
		if err := fsyncs.enable(); err != nil {
			_, _ = fsyncs.stop()
			return fmt.Errorf("counting fsyncs: %w", err)
		}
	}
	cpu0, err := cpuSeconds(g.cmd.Process.Pid)
	if err != nil {
		return err
	}
	profiled := make(chan error, 1)
	if o.cpuProfile != "" && g.name == "guarded" && wl.Name == o.profileWorkload && res.Requests == 0 && res.Seconds == 0 {
		go func() { profiled <- cpuProfile(g, o.duration, o.cpuProfile) }()
	} else {
		profiled <- nil
	}
	start := time.Now()
	lat, err := drive(client, o.concurrency, o.duration, wl, url, g.name == "guarded", true)
	elapsed := time.Since(start)
	cpu1, cpuErr := cpuSeconds(g.cmd.Process.Pid)
	var synced int64
	var syncErr error
	if fsyncs != nil {
		synced, syncErr = fsyncs.stop()
	}
	if err != nil {
		return fmt.Errorf("%s on %s: %w", wl.Name, g.name, err)
	}
	if err := errors.Join(<-profiled, cpuErr); err != nil {
		return err
	}
	if syncErr != nil {
		return fmt.Errorf("counting fsyncs: %w", syncErr)
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
	if fsyncs != nil {
		res.fsyncs += synced
		res.fsyncsCounted = true
	}
	return nil
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
func drive(client *http.Client, n int, d time.Duration, wl workload, url string, guarded, keep bool) (driven, error) {
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
				req.Header.Set("Authorization", wl.auth)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					if resp.StatusCode != want {
						// The guard's error body names its reasons.
						body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
						err = fmt.Errorf("status %d, want %d: %s", resp.StatusCode, want, bytes.TrimSpace(body))
					}
					_, copyErr := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil {
						err = copyErr
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

// soak drives wl at the guarded gateway for o.soak and samples its RSS
// each second.
func soak(o options, g *gateway, wl workload) (*Soak, error) {
	fmt.Fprintf(os.Stderr, "soak: %s of %s on guarded\n", o.soak, wl.Name)
	s := &Soak{Workload: wl.Name}
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
	start := time.Now()
	d, err := drive(client, o.concurrency, o.soak, wl, "http://"+g.addr+wl.path, true, true)
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
