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
	"testing"
	"time"
)

type upstreamCase struct {
	mode string // X-Backend-Mode
	// clientWait is how long the client waits for the answer.
	clientWait time.Duration
	wantStatus int // 0: no response before the client gives up
	wantRead   int64
	wantReason string
	wantRecord int // the status in the record
}

// TestHostileUpstreams: an allowed reset whose backend misbehaves gets a
// precise answer and exactly one audit record, and the gateway does not
// panic (a panic would be recorded as reason "panic").
func TestHostileUpstreams(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)
	cases := []upstreamCase{
		{mode: "endless", clientWait: 15 * time.Second, wantStatus: 200, wantRead: 3 << 20, wantReason: "entity_not_read", wantRecord: 200},
		{mode: "gzip-bomb", clientWait: 15 * time.Second, wantStatus: 200, wantReason: "entity_not_read", wantRecord: 200},
		{mode: "short", clientWait: 15 * time.Second, wantStatus: 502, wantReason: "upstream_incomplete", wantRecord: 502},
		{mode: "hang", clientWait: time.Second, wantStatus: 0, wantReason: "client_gone", wantRecord: 499},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			tc.exchange(t, g)
			rec := awaitOneRecord(t, g)
			if r := field(rec, "event.reason"); r != tc.wantReason {
				t.Errorf("event.reason = %v, want %s: %s", r, tc.wantReason, rec["_raw"])
			}
			if s := field(rec, "http.response.status_code"); s != float64(tc.wantRecord) {
				t.Errorf("http.response.status_code = %v, want %d", s, tc.wantRecord)
			}
			if field(rec, "resetguard.upstream") == nil {
				t.Errorf("an allowed reset's record has no upstream part: %s", rec["_raw"])
			}
		})
	}
}

// exchange sends the bot's reset with the case's backend mode and checks
// what the client gets within its wait, then hangs up.
func (tc upstreamCase) exchange(t *testing.T, g *gateway) {
	t.Helper()
	conn, err := net.Dial("tcp", gatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(tc.clientWait)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /api/v1/ChatSession/427/Reset HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nAccept-Encoding: gzip\r\nX-Backend-Mode: %s\r\nX-Test-Case: upstream-%s\r\nContent-Length: 0\r\n\r\n",
		gatewayAddr, basic("bot", "pw"), tc.mode, tc.mode)
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
