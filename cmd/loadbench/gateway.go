package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

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

// guardedConfig is reset_guard in front of the bare gateway's proxy.
// Both identity sources are configured, as a deployment with bots on
// JWTs and onsite users on Basic would: a JWT bearer is verified against
// jwksFile, any other credential's principal is looked up at the backend.
func guardedConfig(backend, policy, query, jwksFile, auditFile, fsync string) func(string) map[string]any {
	return func(listen string) map[string]any {
		guard := map[string]any{
			"handler":         "reset_guard",
			"policy":          map[string]any{"paths": []string{policy}, "query": query, "timeout": "100ms"},
			"fingerprint_key": "loadbench",
			"identity": map[string]any{
				"jwt": jwtIdentity(jwksFile),
				"principal_lookup": map[string]any{
					"upstream": "http://" + backend, "timeout": "2s", "ttl": "10m", "max_entries": 10000},
			},
			"audit": map[string]any{"file": map[string]any{"path": auditFile, "fsync": fsync, "fsync_interval": "1s"}},
		}
		return baseConfig(listen, guard, proxyTo(backend))
	}
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
