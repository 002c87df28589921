package integration_test

// Hostile upstreams: an allowed reset whose backend misbehaves (the
// backend's misbehaviours in backend_test.go), sent on a raw connection so
// the test controls how long the client waits.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

type upstreamCase struct {
	name string // also X-Test-Case, prefixed with "upstream-"
	site string // the site's host:port; gatewayAddr unless set
	mode string // X-Backend-Mode
	// clientWait is how long the client waits for the answer.
	clientWait time.Duration
	wantStatus int // 0: no response before the client gives up
	wantRead   int64

	wantOutcome       string
	wantReason        string
	wantRecord        int    // the status in the record
	wantUpstream      int    // resetguard.upstream.status
	wantUpstreamError string // resetguard.upstream.error; "" for none
	// wantReceived: the backend received the reset. Every unknown
	// outcome here is one where it did, and the one failure one where
	// it cannot have.
	wantReceived bool
}

// TestHostileUpstreams: an allowed reset whose backend misbehaves, or
// whose client leaves, gets a precise answer and exactly one audit
// record, and the gateway does not panic (a panic would be recorded as
// reason "panic"). The record's outcome is failure only where the backend
// never received the request (nothing listens: the dial fails); wherever
// it may have acted on it, the outcome is unknown.
func TestHostileUpstreams(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)
	cases := []upstreamCase{
		{name: "endless", mode: "endless", clientWait: 15 * time.Second, wantStatus: 200, wantRead: 3 << 20,
			wantOutcome: "unknown", wantReason: "entity_not_read", wantRecord: 200, wantUpstream: 200, wantReceived: true},
		{name: "gzip-bomb", mode: "gzip-bomb", clientWait: 15 * time.Second, wantStatus: 200,
			wantOutcome: "unknown", wantReason: "entity_not_read", wantRecord: 200, wantUpstream: 200, wantReceived: true},
		// Nothing listens behind deadURL: the request never left.
		{name: "unreachable", site: strings.TrimPrefix(deadURL, "http://"), clientWait: 15 * time.Second, wantStatus: 502,
			wantOutcome: "failure", wantReason: "upstream_error", wantRecord: 502, wantUpstreamError: "upstream unreachable"},
		// The backend reads the request and closes the connection
		// without answering: it may have reset the session.
		{name: "hangup", mode: "hangup", clientWait: 15 * time.Second, wantStatus: 502,
			wantOutcome: "unknown", wantReason: "upstream_error", wantRecord: 502, wantUpstreamError: "upstream failed", wantReceived: true},
		{name: "short", mode: "short", clientWait: 15 * time.Second, wantStatus: 502,
			wantOutcome: "unknown", wantReason: "upstream_incomplete", wantRecord: 502, wantUpstream: 200,
			wantUpstreamError: "upstream response body incomplete", wantReceived: true},
		// The client leaves while the backend is still answering: after
		// its headers (their status is kept), or before them.
		{name: "hang", mode: "hang", clientWait: time.Second,
			wantOutcome: "unknown", wantReason: "client_gone", wantRecord: 499, wantUpstream: 200,
			wantUpstreamError: "client closed the request", wantReceived: true},
		{name: "silent", mode: "silent", clientWait: time.Second,
			wantOutcome: "unknown", wantReason: "client_gone", wantRecord: 499,
			wantUpstreamError: "client closed the request", wantReceived: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.exchange(t, g)
			rec := awaitOneRecord(t, g)
			for path, want := range map[string]any{
				"event.type":                 []any{"allowed"},
				"event.outcome":              tc.wantOutcome,
				"event.reason":               tc.wantReason,
				"http.response.status_code":  float64(tc.wantRecord),
				"resetguard.upstream.status": float64(tc.wantUpstream),
				"resetguard.upstream.error":  orNil(tc.wantUpstreamError),
			} {
				if got := field(rec, path); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s = %v, want %v: %s", path, got, want, rec["_raw"])
				}
			}
			if got := len(g.backend.requests("upstream-" + tc.name)); (got == 1) != tc.wantReceived || got > 1 {
				t.Errorf("the backend received the reset %d times, want it received: %v", got, tc.wantReceived)
			}
		})
	}
}

// orNil is s, or nil for "" (a field the record leaves out).
func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// exchange sends the bot's reset with the case's backend mode and checks
// what the client gets within its wait, then hangs up.
func (tc upstreamCase) exchange(t *testing.T, g *gateway) {
	t.Helper()
	site := tc.site
	if site == "" {
		site = gatewayAddr
	}
	conn, err := net.Dial("tcp", site)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(tc.clientWait)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/v1/ChatSession/427/Reset HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nAccept-Encoding: gzip\r\nX-Backend-Mode: %s\r\nX-Test-Case: upstream-%s\r\nContent-Length: 0\r\n\r\n",
		site, basic("bot", "pw"), tc.mode, tc.name)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	switch {
	case tc.wantStatus == 0:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, %v; want no answer before the client gives up", resp, err)
		}
	case err != nil:
		t.Fatalf("no response: %v", err)
	default:
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 3<<20))
		if tc.wantRead > 0 && n != tc.wantRead {
			t.Errorf("read %d bytes of the endless body, want %d", n, tc.wantRead)
		}
		if tc.mode == "gzip-bomb" && (resp.Header.Get("Content-Encoding") != "gzip" || n != int64(len(g.backend.sentBody("upstream-gzip-bomb")))) {
			t.Errorf("the client got %d bytes with Content-Encoding %q, want the backend's gzip bytes unchanged", n, resp.Header.Get("Content-Encoding"))
		}
	}
}

// awaitOneRecord returns the one record of a request whose client may
// have left: it is written when the gateway notices, so wait for it, then
// make sure no second one follows.
func awaitOneRecord(t *testing.T, g *gateway) map[string]any {
	t.Helper()
	var records []map[string]any
	for deadline := time.Now().Add(5 * time.Second); len(records) == 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		records = g.newAuditLines(t)
	}
	time.Sleep(500 * time.Millisecond)
	records = append(records, g.newAuditLines(t)...)
	if len(records) != 1 {
		t.Fatalf("%d audit records, want 1", len(records))
	}
	return records[0]
}
