package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// fsyncEvents are the system calls that make file data durable. Go's
// File.Sync is fsync(2); fdatasync is counted as well so that a sink
// changed to use it is not silently counted as zero.
var fsyncEvents = []string{"syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync"}

// fsyncCounter counts a process's fsync calls over a window with
// `perf stat` on the syscall tracepoints: the gateway exposes no fsync
// count (the audit sink counts them, but neither its status route nor its
// metrics publish the figure), and a tracepoint counter costs the
// process almost nothing, unlike strace, which stops it at every call.
// perf starts with its counters disabled and is switched on and off
// through its control descriptors, each switch acknowledged, so the
// window is exactly the measured phase, not perf's start-up.
type fsyncCounter struct {
	cmd     *exec.Cmd
	ctl     *os.File // perf's control input: "enable", "disable"
	ack     *os.File // perf's acknowledgements
	acks    *bufio.Reader
	stderr  *strings.Builder
	out     string
	stopped bool
}

// startFsyncCounter attaches perf to pid; out is perf's result file.
// The counters stay off until enable.
func startFsyncCounter(pid int, out string) (*fsyncCounter, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, err
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	cmd := exec.Command(perf, "stat", "-e", strings.Join(fsyncEvents, ","), "-p", strconv.Itoa(pid),
		"-x", ",", "-o", out, "-D", "-1", "--control", "fd:3,4")
	cmd.ExtraFiles = []*os.File{ctlR, ackW} // fds 3 and 4 in perf
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	err = cmd.Start()
	// perf holds its own copies; closing ours lets an acknowledgement
	// read end with EOF if perf exits.
	ctlR.Close()
	ackW.Close()
	if err != nil {
		ctlW.Close()
		ackR.Close()
		return nil, err
	}
	return &fsyncCounter{cmd: cmd, ctl: ctlW, ack: ackR, acks: bufio.NewReader(ackR), stderr: stderr, out: out}, nil
}

// command sends perf a control command and waits for its
// acknowledgement: after "enable" returns, every fsync is counted.
func (c *fsyncCounter) command(cmd string) error {
	if _, err := c.ctl.WriteString(cmd + "\n"); err != nil {
		return fmt.Errorf("perf %s: %w", cmd, err)
	}
	// A perf that cannot attach (no tracefs, not permitted) exits, and the
	// read ends with EOF; one that hangs is not waited for long.
	_ = c.ack.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.acks.ReadString('\n')
	if err != nil {
		return fmt.Errorf("perf %s: no acknowledgement: %w", cmd, err)
	}
	// perf writes "ack\n" with its C string's terminating NUL, which
	// then starts the next line read.
	if strings.Trim(line, "\x00 \n") != "ack" {
		return fmt.Errorf("perf %s: acknowledged %q", cmd, line)
	}
	return nil
}

func (c *fsyncCounter) enable() error { return c.command("enable") }

// stop switches the counters off, ends perf and returns the fsync calls
// counted while they were on.
func (c *fsyncCounter) stop() (int64, error) {
	if c.stopped {
		return 0, errors.New("fsync counter already stopped")
	}
	c.stopped = true
	cmdErr := c.command("disable")
	// On an interrupt perf writes its counts and exits; one that does not
	// is killed, and then has written nothing.
	_ = c.cmd.Process.Signal(os.Interrupt)
	exited := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-exited
	}
	c.ctl.Close()
	c.ack.Close()
	if cmdErr != nil {
		return 0, fmt.Errorf("%w (perf: %s)", cmdErr, strings.TrimSpace(c.stderr.String()))
	}
	// perf's exit status after an interrupt says nothing; its output
	// says whether it counted.
	raw, err := os.ReadFile(c.out)
	if err != nil {
		return 0, fmt.Errorf("perf wrote no counts: %w (perf: %s)", err, strings.TrimSpace(c.stderr.String()))
	}
	return parsePerfCounts(string(raw))
}

// parsePerfCounts sums the counts of fsyncEvents in perf stat's CSV
// output (-x ,): "COUNT,UNIT,EVENT,…". "<not counted>" means the
// process never ran while the counters were on, so it made no call.
func parsePerfCounts(out string) (int64, error) {
	var total int64
	seen := 0
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		known := false
		for _, e := range fsyncEvents {
			known = known || f[2] == e
		}
		if !known {
			continue
		}
		seen++
		switch f[0] {
		case "<not counted>":
			continue
		case "<not supported>":
			return 0, fmt.Errorf("perf: %s not supported", f[2])
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("perf: count of %s: %w", f[2], err)
		}
		total += n
	}
	if seen != len(fsyncEvents) {
		return 0, fmt.Errorf("perf counted %d of %d events:\n%s", seen, len(fsyncEvents), out)
	}
	return total, nil
}

// probeFsyncCounter checks, before any phase, that perf can count pid's
// fsync calls here (perf installed, tracepoints readable, attaching
// allowed).
func probeFsyncCounter(pid int, out string) error {
	c, err := startFsyncCounter(pid, out)
	if err != nil {
		return err
	}
	if err := c.enable(); err != nil {
		_, _ = c.stop()
		return err
	}
	_, err = c.stop()
	return err
}
