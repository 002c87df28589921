package resetguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// forward sends an allowed request on, holds the response, decodes the
// entity, writes the record and only then releases the response.
func (h *Handler) forward(x *exchange, next caddyhttp.Handler) error {
	up := &audit.Upstream{}
	x.rec.Upstream = up
	upStart := time.Now()
	var held *heldResponse
	held = newHeldResponse(x.w, int(h.MaxResponseBody), func() {
		// The body is too large to hold: record what is known before
		// the first byte leaves.
		up.Status = held.status
		up.Duration = time.Since(upStart)
		up.ContentType = held.Header().Get("Content-Type")
		up.EntityError = "response body larger than max_response_body"
		x.rec.Status = held.status
		guardMetrics.upstreamSeconds.WithLabelValues(x.rec.Route).Observe(up.Duration.Seconds())
		held.Header().Set("X-Request-Id", x.rec.RequestID)
		h.emit(x, audit.OutcomeUnknown, "entity_not_read")
	})
	defer held.free()
	aborted, err := serveNext(next, held, x.r)
	if aborted {
		if !held.held() {
			// Part of the body already reached the client, after its
			// record: cut the connection, as reverse_proxy asked.
			panic(http.ErrAbortHandler)
		}
		// The upstream broke off its body (or the client left) while the
		// response was still held: nothing reached the client, so it gets
		// a clean error instead of a truncated entity.
		up.Duration = time.Since(upStart)
		up.Status = held.status
		up.ContentType = held.Header().Get("Content-Type")
		status, reason := http.StatusBadGateway, "upstream_incomplete"
		up.Error = "upstream response body incomplete"
		if x.r.Context().Err() != nil {
			status, reason = statusClientClosed, "client_gone"
			up.Error = "client closed the request"
		}
		h.logger.Warn("upstream response aborted for a guarded reset", zap.String("request_id", x.rec.RequestID), zap.String("reason", reason))
		// The upstream's headers are already in the (shared) header map;
		// they describe a body that is not sent.
		for k := range x.w.Header() {
			if k != "Server" {
				delete(x.w.Header(), k)
			}
		}
		x.w.Header().Set("X-Request-Id", x.rec.RequestID)
		guardMetrics.upstreamSeconds.WithLabelValues(x.rec.Route).Observe(up.Duration.Seconds())
		return h.refuseForwarded(x, status, reason)
	}
	if !held.held() {
		if err != nil {
			h.logger.Error("upstream failed while streaming a guarded response", zap.String("request_id", x.rec.RequestID), zap.Error(err))
		}
		return err
	}
	up.Duration = time.Since(upStart)
	up.Status = held.status
	up.ContentType = held.Header().Get("Content-Type")
	guardMetrics.upstreamSeconds.WithLabelValues(x.rec.Route).Observe(up.Duration.Seconds())
	// reverse_proxy added the backend's response headers; the guard's
	// request id is the one the client gets.
	held.Header().Set("X-Request-Id", x.rec.RequestID)

	if err != nil && !held.wrote() {
		status := http.StatusBadGateway
		var he caddyhttp.HandlerError
		if errors.As(err, &he) && he.StatusCode >= 400 {
			status = he.StatusCode
		}
		reason := "upstream_error"
		if errors.Is(x.r.Context().Err(), context.Canceled) {
			reason = "client_gone"
		}
		up.Error = upstreamErrorText(status)
		h.logger.Error("upstream failed for a guarded reset", zap.String("request_id", x.rec.RequestID), zap.Error(err))
		return h.refuseForwarded(x, status, reason)
	}

	outcome, reason := audit.OutcomeSuccess, ""
	switch {
	case up.Status == statusClientClosed && x.r.Context().Err() != nil:
		// reverse_proxy answers a client that left with 499 itself; the
		// backend's answer, if any, was never read.
		outcome, reason = audit.OutcomeFailure, "client_gone"
		up.Status = 0
		up.Error = "client closed the request"
		x.rec.Status = statusClientClosed
		h.emit(x, outcome, reason)
		return nil
	case up.Status == 0 || up.Status >= 300:
		outcome, reason = audit.OutcomeFailure, "upstream_status"
		if up.Status == 0 {
			up.Status = http.StatusOK
			outcome, reason = audit.OutcomeUnknown, "upstream_empty"
		}
	default:
		// One decoding gives the record's facts and the opted-in
		// customer fields.
		ent, derr := superoffice.DecodeEntity(held.buf.Bytes(), up.ContentType, held.Header().Get("Content-Encoding"),
			superoffice.DecodeOptions{MaxDecoded: h.MaxResponseBody, Customer: h.customer.Names()})
		switch {
		case errors.Is(derr, superoffice.ErrNoEntity):
			outcome, reason = audit.OutcomeFailure, "upstream_no_entity"
			up.EntityError = derr.Error()
		case derr != nil:
			outcome, reason = audit.OutcomeUnknown, "entity_not_read"
			up.EntityError = derr.Error()
		default:
			up.EntityRead = true
			x.rec.ChatSession = ent.Session
			if h.customer != nil {
				if c, err := h.customer.Fields(ent); err == nil {
					x.rec.Customer = c
				}
			}
			if x.rec.SessionID > 0 && ent.Session.ID != x.rec.SessionID {
				outcome, reason = audit.OutcomeUnknown, "entity_id_mismatch"
			}
		}
	}
	x.rec.Status = up.Status
	h.emit(x, outcome, reason)
	if err != nil {
		h.logger.Error("upstream handler returned an error after responding", zap.String("request_id", x.rec.RequestID), zap.Error(err))
	}
	if rerr := held.release(); rerr != nil {
		return caddyhttp.Error(statusClientClosed, fmt.Errorf("releasing guarded response: %w", rerr))
	}
	return nil
}

// serveNext calls the next handler and turns reverse_proxy's
// panic(http.ErrAbortHandler), its way of abandoning a response whose
// upstream body failed half-way, into aborted=true. Other panics go on to
// guard's recovery.
func serveNext(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request) (aborted bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			aborted = true
		}
	}()
	return false, next.ServeHTTP(w, r)
}

func upstreamErrorText(status int) string {
	if status == http.StatusGatewayTimeout {
		return "upstream timed out"
	}
	return "upstream unreachable or failed"
}

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
