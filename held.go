package resetguard

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// heldResponse holds the upstream's response to a guarded request until
// the audit record is written. Unlike caddyhttp.NewResponseRecorder it
// caps what it holds: past limit bytes (or a declared Content-Length past
// limit) it calls release, which writes the record, and streams the rest
// straight through, so that a huge body costs no memory and still goes
// out only after its record.
type heldResponse struct {
	*caddyhttp.ResponseWriterWrapper
	buf       *bytes.Buffer // from heldBuffers; see free
	limit     int
	status    int
	streaming bool
	// beforeStream runs once, before the first byte reaches the client in
	// streaming mode.
	beforeStream func()
}

// Interface guards: the holder must intercept flushes (reverse_proxy
// flushes unknown-length bodies at once; letting it through would send
// the headers before the record is written) and reads-from (the wrapper's
// ReadFrom would bypass the hold).
var (
	_ http.ResponseWriter = (*heldResponse)(nil)
	_ http.Flusher        = (*heldResponse)(nil)
	_ io.ReaderFrom       = (*heldResponse)(nil)
)

// heldBuffers recycles the buffers responses are held in.
var heldBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledHold bounds the buffers kept for reuse: an entity is a few KiB,
// and keeping a rare huge one would pin its memory.
const maxPooledHold = 64 << 10

func newHeldResponse(w http.ResponseWriter, limit int, beforeStream func()) *heldResponse {
	return &heldResponse{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		buf:                   heldBuffers.Get().(*bytes.Buffer),
		limit:                 limit,
		beforeStream:          beforeStream,
	}
}

// free returns the buffer for reuse once the response and its record are
// done with it.
func (h *heldResponse) free() {
	b := h.buf
	h.buf = nil
	if b == nil || b.Cap() > maxPooledHold {
		return
	}
	b.Reset()
	heldBuffers.Put(b)
}

// WriteHeader records the status. Informational statuses pass at once:
// they carry no entity and the client may be waiting on them.
func (h *heldResponse) WriteHeader(status int) {
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		h.ResponseWriter.WriteHeader(status)
		return
	}
	if h.status != 0 {
		return
	}
	h.status = status
	if cl, err := strconv.ParseInt(h.Header().Get("Content-Length"), 10, 64); err == nil && cl > int64(h.limit) {
		h.startStreaming()
	}
}

func (h *heldResponse) Write(p []byte) (int, error) {
	if h.status == 0 {
		h.WriteHeader(http.StatusOK)
	}
	if h.streaming {
		return h.ResponseWriter.Write(p)
	}
	if h.buf.Len()+len(p) > h.limit {
		h.startStreaming()
		return h.ResponseWriter.Write(p)
	}
	return h.buf.Write(p)
}

// ReadFrom copies through Write so that nothing bypasses the hold.
func (h *heldResponse) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(writerOnly{h}, r)
}

// Flush is a no-op while the response is held.
func (h *heldResponse) Flush() { _ = h.FlushError() }

// FlushError flushes only once the response streams.
func (h *heldResponse) FlushError() error {
	if !h.streaming {
		return nil
	}
	return http.NewResponseController(h.ResponseWriter).Flush()
}

func (h *heldResponse) startStreaming() {
	h.streaming = true
	if h.beforeStream != nil {
		h.beforeStream()
	}
	h.ResponseWriter.WriteHeader(h.status)
	if h.buf.Len() > 0 {
		_, _ = h.ResponseWriter.Write(h.buf.Bytes())
		h.buf.Reset()
	}
}

// held reports whether the whole response is in the buffer.
func (h *heldResponse) held() bool { return !h.streaming }

// wrote reports whether the next handler produced a response at all.
func (h *heldResponse) wrote() bool { return h.status != 0 }

// release sends the held response to the client unchanged.
func (h *heldResponse) release() error {
	if h.streaming {
		return nil
	}
	status := h.status
	if status == 0 {
		status = http.StatusOK
	}
	h.ResponseWriter.WriteHeader(status)
	if h.buf.Len() == 0 {
		return nil
	}
	_, err := h.ResponseWriter.Write(h.buf.Bytes())
	return err
}

type writerOnly struct{ io.Writer }
