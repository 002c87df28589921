package resetguard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// proxyEnding is one way reverse_proxy ends a forwarded request, as its
// source (modules/caddyhttp/reverseproxy, v2.11.9) ends it, and the
// record and response the guard must make of it.
type proxyEnding struct {
	name string
	// next plays reverse_proxy; leave cancels the client's context, as
	// Go's server does when the client hangs up.
	next func(w http.ResponseWriter, leave func()) error
	// retries is {http.reverse_proxy.retries} as reverse_proxy sets it;
	// nil: not set.
	retries any

	wantStatus        int // what the client gets (499: nobody is there)
	wantOutcome       string
	wantReason        string
	wantUpstream      string // resetguard.upstream.status
	wantUpstreamError string // resetguard.upstream.error, "" for none
}

// dialRefused is the error reverse_proxy returns when it could not
// connect: its transport's DialError, wrapped by statusError.
func dialRefused() error {
	return caddyhttp.Error(http.StatusBadGateway,
		reverseproxy.NewDialError(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}))
}

// answerHalf writes the backend's headers and half its body, then breaks
// off as reverse_proxy does when the body read fails.
func answerHalf(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "1000")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"ChatSessionId": 427,`))
	panic(http.ErrAbortHandler)
}

// TestOutcomeAfterForwarding: once forwarded, a reset is recorded as a
// failure only when the backend cannot have acted on it (it was never
// reached, or answered >= 300); every ending in which the request may
// have reached it is unknown. The client's status and reason do not
// change with the outcome.
func TestOutcomeAfterForwarding(t *testing.T) {
	cases := []proxyEnding{
		{name: "dial refused", next: func(http.ResponseWriter, func()) error { return dialRefused() },
			wantStatus: 502, wantOutcome: "failure", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream unreachable"},
		{name: "dial refused behind a forward proxy", next: func(http.ResponseWriter, func()) error {
			var dial reverseproxy.DialError
			_ = errors.As(dialRefused(), &dial)
			return caddyhttp.Error(http.StatusBadGateway, &net.OpError{Op: "proxyconnect", Net: "tcp", Err: dial})
		}, wantStatus: 502, wantOutcome: "failure", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream unreachable"},
		{name: "dial refused on the first attempt, no retry", retries: 0, next: func(http.ResponseWriter, func()) error { return dialRefused() },
			wantStatus: 502, wantOutcome: "failure", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream unreachable"},
		// With retries, only the last attempt's error is known; an
		// earlier one may have reached a backend.
		{name: "dial refused after a retry", retries: 1, next: func(http.ResponseWriter, func()) error { return dialRefused() },
			wantStatus: 502, wantOutcome: "unknown", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream failed"},
		{name: "dial refused, retries of an unknown type", retries: "1", next: func(http.ResponseWriter, func()) error { return dialRefused() },
			wantStatus: 502, wantOutcome: "unknown", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream failed"},
		{name: "backend hung up after the request", next: func(http.ResponseWriter, func()) error {
			return caddyhttp.Error(http.StatusBadGateway, io.EOF)
		}, wantStatus: 502, wantOutcome: "unknown", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream failed"},
		{name: "response header timeout", next: func(http.ResponseWriter, func()) error {
			return caddyhttp.Error(http.StatusGatewayTimeout, errors.New("net/http: timeout awaiting response headers"))
		}, wantStatus: 504, wantOutcome: "unknown", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream timed out"},
		// reverse_proxy's "no upstreams available" carries no mark the
		// guard can test for, and may follow an attempt that was sent.
		{name: "no upstream available", next: func(http.ResponseWriter, func()) error {
			return caddyhttp.Error(http.StatusServiceUnavailable, errors.New("no upstreams available"))
		}, wantStatus: 503, wantOutcome: "unknown", wantReason: "upstream_error", wantUpstream: "0", wantUpstreamError: "upstream failed"},
		// reverse_proxy writes 499 itself when the round trip is
		// cancelled: the backend's status is not known.
		{name: "client gone before the backend's headers", next: func(w http.ResponseWriter, leave func()) error {
			leave()
			w.WriteHeader(statusClientClosed)
			return nil
		}, wantStatus: statusClientClosed, wantOutcome: "unknown", wantReason: "client_gone", wantUpstream: "0", wantUpstreamError: "client closed the request"},
		{name: "client gone while the dial failed", next: func(_ http.ResponseWriter, leave func()) error {
			leave()
			return caddyhttp.Error(statusClientClosed, reverseproxy.NewDialError(errors.New("dial tcp: operation was canceled")))
		}, wantStatus: statusClientClosed, wantOutcome: "failure", wantReason: "client_gone", wantUpstream: "0", wantUpstreamError: "client closed the request"},
		{name: "client gone while the backend's body arrives", next: func(w http.ResponseWriter, leave func()) error {
			leave()
			answerHalf(w)
			return nil
		}, wantStatus: statusClientClosed, wantOutcome: "unknown", wantReason: "client_gone", wantUpstream: "200", wantUpstreamError: "client closed the request"},
		{name: "backend cut its body", next: func(w http.ResponseWriter, _ func()) error {
			answerHalf(w)
			return nil
		}, wantStatus: 502, wantOutcome: "unknown", wantReason: "upstream_incomplete", wantUpstream: "200", wantUpstreamError: "upstream response body incomplete"},
		{name: "backend answered 500", next: func(w http.ResponseWriter, _ func()) error {
			w.WriteHeader(http.StatusInternalServerError)
			return nil
		}, wantStatus: 500, wantOutcome: "failure", wantReason: "upstream_status", wantUpstream: "500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t) })
	}
}

func (tc proxyEnding) run(t *testing.T) {
	h, logs := provisioned(t, &Handler{Policy: testPolicy()})
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r := caddyhttp.PrepareRequest(botRequest(t).WithContext(ctx), repl, w, nil)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		if tc.retries != nil {
			repl.Set("http.reverse_proxy.retries", tc.retries)
		}
		return tc.next(w, leave)
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	// Nobody receives a 499; without a backend answer the guard writes
	// its own error body, naming the reason.
	guardBody := tc.wantUpstreamError != ""
	if tc.wantStatus != statusClientClosed &&
		(w.Code != tc.wantStatus || guardBody != strings.Contains(w.Body.String(), `"`+tc.wantReason+`"`)) {
		t.Errorf("client got %d %s, want %d (the guard's body naming %s: %v)", w.Code, w.Body, tc.wantStatus, tc.wantReason, guardBody)
	}
	rec, ev := soleRecord(t, logs)
	checkEvent(t, ev, tc.wantReason, tc.wantOutcome, "allowed")
	if got, _ := rec["http"].(map[string]any)["response"].(map[string]any); fmt.Sprint(got["status_code"]) != fmt.Sprint(tc.wantStatus) {
		t.Errorf("http.response.status_code = %v, want %d", got["status_code"], tc.wantStatus)
	}
	up, _ := rec["resetguard"].(map[string]any)["upstream"].(map[string]any)
	if fmt.Sprint(up["status"]) != tc.wantUpstream || fmt.Sprint(up["error"]) != fmt.Sprint(orNil(tc.wantUpstreamError)) {
		t.Errorf("upstream = %v, want status %s error %q", up, tc.wantUpstream, tc.wantUpstreamError)
	}
	if got, _ := repl.GetString("http.reset_guard.outcome"); got != tc.wantOutcome {
		t.Errorf("{http.reset_guard.outcome} = %q, want %q", got, tc.wantOutcome)
	}
}

// orNil is s, or nil for "", as a missing map entry reads.
func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// TestNeverSentOnCaddysTransport holds the guard's reading of Caddy's
// errors to the real transport reverse_proxy uses, against real loopback
// backends: a dial that fails is a DialError in the chain reverse_proxy
// returns; a backend that took the request and then hung up, or never
// answered, is not.
func TestNeverSentOnCaddysTransport(t *testing.T) {
	tr := &reverseproxy.HTTPTransport{ResponseHeaderTimeout: caddy.Duration(100 * time.Millisecond)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer tr.Cleanup()
	cases := []struct {
		name string
		// backend returns the address to send to, and a channel that
		// reports the backend's read of the request (nil: nothing
		// listens).
		backend  func(t *testing.T) (addr string, read <-chan error)
		wantSent bool
	}{
		{name: "nothing listening", backend: func(t *testing.T) (string, <-chan error) { return closedAddr(t), nil }},
		{name: "backend hangs up after reading the request", wantSent: true, backend: func(t *testing.T) (string, <-chan error) {
			return rawBackend(t, func(c net.Conn) { _ = c.Close() })
		}},
		{name: "backend never answers", wantSent: true, backend: func(t *testing.T) (string, <-chan error) {
			return rawBackend(t, func(c net.Conn) { t.Cleanup(func() { _ = c.Close() }) })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, read := tc.backend(t)
			req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/ChatSession/427/Reset", http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			res, err := tr.RoundTrip(req)
			if err == nil {
				res.Body.Close()
				t.Fatalf("the round trip succeeded with %d, want an error", res.StatusCode)
			}
			if read != nil {
				if err := <-read; err != nil {
					t.Fatalf("the backend did not read the request: %v", err)
				}
			}
			// reverse_proxy returns the transport's error wrapped in a
			// HandlerError (statusError).
			if sent := !neverSent(req, caddyhttp.Error(http.StatusBadGateway, err)); sent != tc.wantSent {
				t.Errorf("neverSent(%v) = %v, want %v", err, !sent, !tc.wantSent)
			}
		})
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// rawBackend accepts one connection, reads one request from it, reports
// the read on the returned channel, and hands the connection to then.
func rawBackend(t *testing.T, then func(net.Conn)) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	read := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			read <- err
			return
		}
		_, err = http.ReadRequest(bufio.NewReader(c))
		read <- err
		then(c)
	}()
	return l.Addr().String(), read
}
