package classify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// ReadBody reads a reset route's request body, bounded in size
// (maxBytes) and time (timeout, so that a client that declares a body
// and never sends it cannot hold the guard), and restores it for the
// backend exactly as the client sent it: r.Body, r.GetBody and
// r.ContentLength describe the bytes read, and r.TransferEncoding is
// cleared, since the length is now known.
//
// It refuses a body larger than maxBytes (413 request_body_too_large),
// one that does not arrive in time (408 request_body_timeout, with
// Connection: close set on w, because the connection's read side is
// spent) and one that cannot be read (400 request_body_unreadable).
func ReadBody(w http.ResponseWriter, r *http.Request, maxBytes int64, timeout time.Duration) ([]byte, *refusal.Refusal) {
	if r.ContentLength > maxBytes {
		return nil, refusal.New(http.StatusRequestEntityTooLarge, refusal.RequestBodyTooLarge, refusal.MessageBodyTooLarge)
	}
	// A deadline on the connection interrupts a read blocked on a silent
	// client; Caddy's idle-timeout reader takes it as a ceiling. A writer
	// that cannot set deadlines (tests) falls back to the server's own
	// timeouts.
	rc := http.NewResponseController(w)
	deadlineSet := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if deadlineSet {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		err = fmt.Errorf("reading the request body: %w", err)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's read side is spent: it cannot carry
			// another request.
			w.Header().Set("Connection", "close")
			return nil, refusal.New(http.StatusRequestTimeout, refusal.RequestBodyTimeout,
				"the request body did not arrive in time").Wrap(err)
		}
		return nil, refusal.New(http.StatusBadRequest, refusal.RequestBodyUnreadable,
			"the request body could not be read").Wrap(err)
	}
	if int64(len(body)) > maxBytes {
		return nil, refusal.New(http.StatusRequestEntityTooLarge, refusal.RequestBodyTooLarge, refusal.MessageBodyTooLarge)
	}
	// The backend must receive the body exactly as the client sent it.
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return body, nil
}
