package classify

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// errReader fails every read, as a body read interrupted by a deadline
// or a reset connection does.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// timeoutError is a net.Error that reports a timeout, as a connection
// read past its deadline returns.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

var _ net.Error = timeoutError{}

// TestReadBody: a body within the bound is restored for the backend as
// sent (Body, GetBody, ContentLength, no Transfer-Encoding); any other
// is the refusal for its failure.
func TestReadBody(t *testing.T) {
	const maxBytes = 16
	cases := []struct {
		name       string
		sent       string
		fail       error // the read fails with it instead of sending sent
		length     int64 // -1: unknown (chunked)
		wantStatus int   // 0: read
		wantReason string
		wantClose  bool // Connection: close on the response
	}{
		{name: "within the bound", sent: `{"a":1}`, length: 7},
		{name: "exactly the bound", sent: strings.Repeat("x", maxBytes), length: maxBytes},
		{name: "chunked within the bound", sent: `{"a":1}`, length: -1},
		{name: "empty", length: 0},
		{name: "declared past the bound", sent: strings.Repeat("x", maxBytes+1), length: maxBytes + 1,
			wantStatus: 413, wantReason: refusal.RequestBodyTooLarge},
		{name: "chunked past the bound", sent: strings.Repeat("x", maxBytes+1), length: -1,
			wantStatus: 413, wantReason: refusal.RequestBodyTooLarge},
		{name: "deadline exceeded", fail: os.ErrDeadlineExceeded, length: 8,
			wantStatus: 408, wantReason: refusal.RequestBodyTimeout, wantClose: true},
		{name: "network timeout", fail: timeoutError{}, length: 8,
			wantStatus: 408, wantReason: refusal.RequestBodyTimeout, wantClose: true},
		{name: "connection broken", fail: io.ErrUnexpectedEOF, length: 8,
			wantStatus: 400, wantReason: refusal.RequestBodyUnreadable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			var body io.Reader = strings.NewReader(tc.sent)
			if tc.fail != nil {
				body = errReader{tc.fail}
			}
			r.Body = io.NopCloser(body)
			r.ContentLength = tc.length
			if tc.length == -1 {
				r.TransferEncoding = []string{"chunked"}
			}
			w := httptest.NewRecorder()
			got, ref := ReadBody(w, r, maxBytes, time.Second)
			if closing := w.Header().Get("Connection") == "close"; closing != tc.wantClose {
				t.Errorf("Connection: close set = %v, want %v", closing, tc.wantClose)
			}
			if tc.wantStatus != 0 {
				if ref == nil || got != nil || ref.Status != tc.wantStatus || ref.Reason() != tc.wantReason {
					t.Fatalf("ReadBody = %q, %v; want nil and a %d %s refusal", got, ref, tc.wantStatus, tc.wantReason)
				}
				return
			}
			if ref != nil || string(got) != tc.sent {
				t.Fatalf("ReadBody = %q, %v; want %q, nil", got, ref, tc.sent)
			}
			checkRestored(t, r, tc.sent)
		})
	}
}

// checkRestored checks that r carries want as the body the backend reads,
// also on a retry through GetBody.
func checkRestored(t *testing.T, r *http.Request, want string) {
	t.Helper()
	if r.ContentLength != int64(len(want)) || r.TransferEncoding != nil {
		t.Errorf("ContentLength %d, TransferEncoding %q; want %d, nil", r.ContentLength, r.TransferEncoding, len(want))
	}
	if got, err := io.ReadAll(r.Body); err != nil || string(got) != want {
		t.Errorf("restored Body = %q, %v; want %q", got, err, want)
	}
	if r.GetBody == nil {
		t.Fatal("GetBody not set")
	}
	rc, err := r.GetBody()
	if err != nil {
		t.Fatalf("GetBody: %v", err)
	}
	if got, err := io.ReadAll(rc); err != nil || string(got) != want {
		t.Errorf("GetBody gives %q, %v; want %q", got, err, want)
	}
}

// TestReadBodySilentClient: a client that declares a body and never sends
// it is answered 408 once the timeout passes, through the connection's
// read deadline, with a response that closes the connection.
func TestReadBodySilentClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, ref := ReadBody(w, r, 1024, 50*time.Millisecond)
		if ref == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(ref.Status)
		_, _ = io.WriteString(w, ref.Reason())
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: guard\r\nContent-Length: 20\r\n\r\n{\"Chat"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || string(got) != refusal.RequestBodyTimeout {
		t.Errorf("response %d %q, want 408 %q", resp.StatusCode, got, refusal.RequestBodyTimeout)
	}
	if !resp.Close {
		t.Error("the response does not close the connection")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v: the read deadline did not interrupt the read", d)
	}
}
