package resetguard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// forward sends an allowed request on, holds the response, decodes the
// entity, writes the record and only then releases the response.
func (h *Handler) forward(x *exchange, next caddyhttp.Handler) error {
	x.upstream = &audit.Upstream{}
	upStart := time.Now()
	var held *heldResponse
	held = newHeldResponse(x.w, int(h.MaxResponseBody), func() {
		// The body is too large to hold: record what is known before
		// the first byte leaves.
		x.observeUpstream(held, upStart)
		x.upstream.EntityError = "response body larger than max_response_body"
		x.status = held.status
		h.emit(x, audit.OutcomeUnknown, refusal.EntityNotRead)
	})
	defer held.free()
	x.rewrite()
	aborted, err := serveNext(next, held, x.r)
	switch {
	case aborted && !held.held():
		// Part of the body already reached the client, after its
		// record: cut the connection, as reverse_proxy asked.
		panic(http.ErrAbortHandler)
	case aborted:
		x.observeUpstream(held, upStart)
		return h.finish(x, h.abandoned(x))
	case !held.held():
		if err != nil {
			h.logger.Error("upstream failed while streaming a guarded response", zap.String("request_id", x.requestID), zap.Error(err))
		}
		return err
	}
	x.observeUpstream(held, upStart)
	if err != nil && !held.wrote() {
		return h.finish(x, h.upstreamFailed(x, err))
	}
	outcome, reason := h.judge(x, held)
	h.emit(x, outcome, reason)
	if reason == refusal.ClientGone {
		// Nobody is left to receive the held response.
		return nil
	}
	if err != nil {
		h.logger.Error("upstream handler returned an error after responding", zap.String("request_id", x.requestID), zap.Error(err))
	}
	if rerr := held.release(); rerr != nil {
		return caddyhttp.Error(statusClientClosed, fmt.Errorf("releasing guarded response: %w", rerr))
	}
	return nil
}

// observeUpstream notes what the backend answered, so far as known, and
// gives the client the guard's request id rather than the backend's.
func (x *exchange) observeUpstream(held *heldResponse, upStart time.Time) {
	up := x.upstream
	up.Duration = time.Since(upStart)
	up.Status = held.status
	up.ContentType = held.Header().Get("Content-Type")
	guardMetrics.upstreamSeconds.WithLabelValues(string(x.t.Route)).Observe(up.Duration.Seconds())
	held.Header().Set("X-Request-Id", x.requestID)
}

// abandoned is the refusal for a response reverse_proxy broke off (the
// upstream cut its body, or the client left) while it was still held:
// nothing reached the client, so it gets a clean error instead of a
// truncated entity.
func (h *Handler) abandoned(x *exchange) *refusal.Refusal {
	ref := refusal.New(http.StatusBadGateway, refusal.UpstreamIncomplete, refusal.MessageBackendFailed)
	x.upstream.Error = "upstream response body incomplete"
	if x.r.Context().Err() != nil {
		ref = refusal.New(statusClientClosed, refusal.ClientGone, refusal.MessageBackendFailed)
		x.upstream.Error = "client closed the request"
	}
	h.logger.Warn("upstream response aborted for a guarded reset", zap.String("request_id", x.requestID), zap.String("reason", ref.Reason()))
	// The upstream's headers are already in the (shared) header map;
	// they describe a body that is not sent.
	for k := range x.w.Header() {
		if k != "Server" {
			delete(x.w.Header(), k)
		}
	}
	x.w.Header().Set("X-Request-Id", x.requestID)
	return ref
}

// upstreamFailed is the refusal for a next handler that returned an error
// without writing a response (backend unreachable, timed out).
func (h *Handler) upstreamFailed(x *exchange, err error) *refusal.Refusal {
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 400 {
		status = he.StatusCode
	}
	reason := refusal.UpstreamError
	if errors.Is(x.r.Context().Err(), context.Canceled) {
		reason = refusal.ClientGone
	}
	x.upstream.Error = upstreamErrorText(status)
	h.logger.Error("upstream failed for a guarded reset", zap.String("request_id", x.requestID), zap.Error(err))
	return refusal.New(status, reason, refusal.MessageBackendFailed).Wrap(err)
}

// judge reads the held response: the outcome of the reset and the
// ChatSessionEntity facts for the record.
func (h *Handler) judge(x *exchange, held *heldResponse) (outcome, reason string) {
	up := x.upstream
	x.status = up.Status
	switch {
	case up.Status == statusClientClosed && x.r.Context().Err() != nil:
		// reverse_proxy answers a client that left with 499 itself; the
		// backend's answer, if any, was never read.
		up.Status = 0
		up.Error = "client closed the request"
		return audit.OutcomeFailure, refusal.ClientGone
	case up.Status == 0:
		up.Status = http.StatusOK
		x.status = http.StatusOK
		return audit.OutcomeUnknown, refusal.UpstreamEmpty
	case up.Status >= 300:
		return audit.OutcomeFailure, refusal.UpstreamStatus
	}
	// One decoding gives the record's facts and the opted-in customer
	// fields.
	ent, err := superoffice.DecodeEntity(held.buf.Bytes(), up.ContentType, held.Header().Get("Content-Encoding"),
		superoffice.DecodeOptions{MaxDecoded: h.MaxResponseBody, Customer: h.customer.Names()})
	switch {
	case errors.Is(err, superoffice.ErrNoEntity):
		up.EntityError = err.Error()
		return audit.OutcomeFailure, refusal.UpstreamNoEntity
	case err != nil:
		up.EntityError = err.Error()
		return audit.OutcomeUnknown, refusal.EntityNotRead
	}
	up.EntityRead = true
	x.chatSession = ent.Session
	if h.customer != nil {
		if c, err := h.customer.Fields(ent); err == nil {
			x.customer = c
		}
	}
	cs := ent.Session
	if x.sessionID > 0 && cs.ID != x.sessionID {
		return audit.OutcomeUnknown, refusal.EntityIDMismatch
	}
	return audit.OutcomeSuccess, ""
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
