package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
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
	user   string // Basic user; the example policy lists "chatbot" as a bot
	want   int    // the status the guarded gateway must answer
}

var workloads = []workload{
	{Name: "allowed_reset", method: http.MethodPost, path: "/api/v1/ChatSession/427/Reset", user: "chatbot", want: http.StatusOK},
	{Name: "denied_reset", method: http.MethodPost, path: "/api/v1/ChatSession/427/Reset", user: "agent7", want: http.StatusForbidden},
	{Name: "pass_through", method: http.MethodGet, path: "/api/v1/ChatSession/427", user: "agent7", want: http.StatusOK},
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
