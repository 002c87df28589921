package resetguard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// forward sends an allowed request on, holds the response, decodes the
// entity, writes the record and only then releases the response.
//
// Once the request is forwarded the backend may act on it, so the record
// says failure only when the guard knows it did not: it answered a status
// >= 300, or 2xx without an entity (judge), or it never received the
// request (neverSent). Every other ending without an answer the guard
// could judge is unknown (unansweredOutcome).
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
		// reverse_proxy breaks a response off only once the backend's
		// headers are in: the backend had the request.
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
	metricsFor(x.r.Context()).upstream(string(x.t.Route), up.Duration)
	held.Header().Set("X-Request-Id", x.requestID)
}

// abandoned is the refusal for a response reverse_proxy broke off (the
// upstream cut its body, or the client left) while it was still held:
// nothing reached the client, so it gets a clean error instead of a
// truncated entity. The backend had begun to answer, so it received the
// request and may have reset the session: the refusal carries no cause,
// and its outcome is unknown.
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
// without writing a response (backend unreachable, hung up, timed out, or
// the client left first). It wraps err, from which finish tells whether
// the backend can have received the request.
func (h *Handler) upstreamFailed(x *exchange, err error) *refusal.Refusal {
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 400 {
		status = he.StatusCode
	}
	reason := refusal.UpstreamError
	x.upstream.Error = upstreamErrorText(status, neverSent(x.r, err))
	if errors.Is(x.r.Context().Err(), context.Canceled) {
		reason = refusal.ClientGone
		x.upstream.Error = "client closed the request"
	}
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
		// reverse_proxy answers a client that left with 499 itself, before
		// the backend's headers arrived: its status is not known, and it
		// may have received the request and reset the session.
		up.Status = 0
		up.Error = "client closed the request"
		return audit.OutcomeUnknown, refusal.ClientGone
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

// unansweredOutcome is the outcome of a guarded request that ends without
// an answer the guard could judge, err being why (nil when no error says):
// failure while the backend cannot have acted on it (the request was not
// forwarded, or reverse_proxy never reached a backend), unknown once it may
// have.
func (x *exchange) unansweredOutcome(err error) string {
	if x.upstream == nil || neverSent(x.r, err) {
		return audit.OutcomeFailure
	}
	return audit.OutcomeUnknown
}

// neverSent reports whether err, a next handler's error (nil: none),
// proves that no backend received the request: reverse_proxy could not
// connect to one.
// Caddy's transports mark a failed dial (refused, unreachable, dial
// timeout, PROXY protocol header not written) as reverseproxy.DialError,
// which net/http returns unchanged (inside a *net.OpError behind a forward
// proxy) and reverse_proxy wraps in a caddyhttp.HandlerError; errors.As
// finds it in either. Every other error can come after the request was
// written: a connection reset or EOF, a response header timeout, even "no
// upstreams available" after an earlier attempt.
//
// The error is the last attempt's only: after a retry (lb_retries,
// lb_try_duration) an earlier attempt may have reached a backend, as Caddy
// retries a POST a backend received when retry_match says so. So a retried
// request is never proven unsent.
func neverSent(r *http.Request, err error) bool {
	var dial reverseproxy.DialError
	return errors.As(err, &dial) && !proxyRetried(r)
}

// proxyRetried reports whether reverse_proxy made more than one attempt:
// its {http.reverse_proxy.retries} placeholder is set and is not the int 0.
// A value of another type counts as a retry, so that a change in Caddy
// cannot turn an unknown outcome into a failure.
func proxyRetried(r *http.Request) bool {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return false
	}
	v, ok := repl.Get("http.reverse_proxy.retries")
	return ok && v != 0
}

// upstreamErrorText is resetguard.upstream.error for a next handler's
// error: a fixed text, never the error's own (it may hold addresses).
func upstreamErrorText(status int, notSent bool) string {
	switch {
	case notSent:
		return "upstream unreachable"
	case status == http.StatusGatewayTimeout:
		return "upstream timed out"
	}
	return "upstream failed"
}
