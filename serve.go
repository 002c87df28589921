package resetguard

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/classify"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// ServeHTTP passes every request that cannot reach Reset straight on, and
// guards the rest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !h.KeepURLOverrideHeaders {
		// The canonical keys, so that no request pays for canonicalising.
		delete(r.Header, "X-Original-Url")
		delete(r.Header, "X-Rewrite-Url")
	}
	t := classify.Path(r.URL.EscapedPath())
	switch {
	case t.Route == classify.None:
		return next.ServeHTTP(w, r)
	case t.Route == classify.SOAP && !t.Unclear:
		pre, pass := h.inspectSOAP(w, r)
		if pass {
			return next.ServeHTTP(w, r)
		}
		return h.guard(w, r, next, t, pre)
	}
	return h.guard(w, r, next, t, nil)
}

// soapCheck is what inspectSOAP learned of a Chat.svc call that does not
// pass: the call, or its refusal, which the session-id step answers so
// that the method is refused first.
type soapCheck struct {
	call    *classify.SOAPCall
	refused *refusal.Refusal
}

// inspectSOAP decides whether a request on the Chat.svc path is a
// ResetChatSession call (classify.InspectSOAP, with this handler's body
// bounds). pass is true for a request that goes on unguarded; everything
// else goes to the guard with the call or the reason it is refused.
func (h *Handler) inspectSOAP(w http.ResponseWriter, r *http.Request) (pre *soapCheck, pass bool) {
	call, pass, ref := classify.InspectSOAP(w, r, h.MaxRequestBody, time.Duration(h.RequestBodyTimeout))
	if pass {
		return nil, true
	}
	return &soapCheck{call: call, refused: ref}, false
}

// Values of the {http.reset_guard.decision} placeholder.
const (
	// verdictRefused: refused before the policy decided (method,
	// session id, credential, identity, session lookup, audit trail or
	// policy not ready).
	verdictRefused = "refused"
	verdictAllow   = "allow"
	verdictDeny    = "deny"
	// verdictError: the policy could not decide; refused.
	verdictError = "error"
	// verdictDryRun: the policy denied or failed, but dry_run forwarded.
	verdictDryRun = "dry_run"
)

// exchange is one guarded request on its way through the steps: the
// facts each step has learned so far. The audit record, the placeholders
// and the metrics are built from them once, when the outcome is known.
type exchange struct {
	w http.ResponseWriter
	r *http.Request
	t classify.Target
	// pre is the body already read and judged (SOAP route), or nil.
	pre *soapCheck

	start time.Time
	// path is the client's escaped path, as asked: the record's url.path.
	path      string
	requestID string
	sourceIP  string
	sessionID int32

	cred credential.Credential
	// credHeader carries the credential to the backend's lookups: the
	// request's headers, or a copy holding a SOAP envelope's ticket.
	credHeader  http.Header
	fingerprint string
	principal   *credential.Principal
	// session is the current ChatSessionEntity, when looked up.
	session map[string]any

	// forwarded is the request an allowed reset is sent on as, once the
	// session id is known.
	forwarded *audit.Forwarded
	decision  *audit.Decision
	verdict   string
	// decided is when the guard let the request go or refused it.
	decided time.Time

	// intentSeq is the chain seq of the durable intent record written
	// before forwarding; 0 without a durable file.
	intentSeq int64
	// upstream is set once the request is forwarded: a record with it is
	// an allowed one.
	upstream    *audit.Upstream
	chatSession *audit.ChatSession
	customer    map[string]string

	status  int
	audited bool
}

// step is one stage of the guard: it adds facts to the exchange or
// refuses the request.
type step func(*Handler, *exchange) *refusal.Refusal

// steps run in order for every guarded request; the first refusal ends
// the request. The audit check comes first: nothing is decided that
// could not be recorded.
var steps = []step{
	(*Handler).checkAudit,
	(*Handler).checkMethod,
	(*Handler).checkFraming,
	(*Handler).checkBinding,
	(*Handler).readSessionID,
	(*Handler).authenticate,
	(*Handler).identify,
	(*Handler).lookupSession,
	(*Handler).decide,
	(*Handler).recordIntent,
}

// guard runs steps 2 to 8 of DESIGN.md §1 for a request classified as a
// reset.
func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, t classify.Target, pre *soapCheck) error {
	x := h.newExchange(w, r, t, pre)
	defer h.recordPanic(x)
	for _, s := range steps {
		if ref := s(h, x); ref != nil {
			return h.finish(x, ref)
		}
	}
	x.markDecided()
	return h.forward(x, next)
}

func (h *Handler) newExchange(w http.ResponseWriter, r *http.Request, t classify.Target, pre *soapCheck) *exchange {
	x := &exchange{w: w, r: r, t: t, pre: pre, start: time.Now(), verdict: verdictRefused,
		path: r.URL.EscapedPath(), requestID: requestID(r), sourceIP: clientIP(r)}
	// One id ties the client's view, the backend's logs and the audit
	// record together: echoed to the client, sent on to the backend.
	w.Header().Set("X-Request-Id", x.requestID)
	r.Header.Set("X-Request-Id", x.requestID)
	return x
}

// recordPanic keeps a panic further down from leaving the attempt
// unaudited; Caddy's server turns the re-panic into a 500. After
// forwarding, the backend may have acted: unknown.
func (h *Handler) recordPanic(x *exchange) {
	if p := recover(); p != nil {
		if !x.audited {
			x.status = http.StatusInternalServerError
			h.emit(x, x.unansweredOutcome(nil), refusal.Panic)
		}
		panic(p)
	}
}

// markDecided notes when the guard let the request go or refused it.
func (x *exchange) markDecided() {
	if x.decided.IsZero() {
		x.decided = time.Now()
		metricsFor(x.r.Context()).decided(x.verdict, x.decided.Sub(x.start))
	}
}

// checkAudit refuses while the durable audit file cannot be written:
// nothing is forwarded that cannot be recorded durably.
func (h *Handler) checkAudit(x *exchange) *refusal.Refusal {
	if h.fileSink == nil {
		return nil
	}
	if err := h.fileSink.Healthy(); err != nil {
		h.logger.Error("durable audit file unavailable; refusing resets", zap.Error(err))
		return refuseUnaudited(err)
	}
	return nil
}

// checkMethod: only a plain POST reaches Reset.
func (h *Handler) checkMethod(x *exchange) *refusal.Refusal {
	if classify.MethodOverride(x.r.Header) {
		return refusal.New(http.StatusBadRequest, refusal.MethodOverrideRefused,
			"method override headers are not accepted on a reset route")
	}
	if x.r.Method != http.MethodPost {
		return refusal.New(http.StatusMethodNotAllowed, refusal.MethodNotAllowed,
			"a chat-session reset must be a POST").WithHeader("Allow", http.MethodPost)
	}
	return nil
}

// checkFraming refuses what the proxy would change after the guard
// decided: a Connection header naming headers (reverse_proxy strips
// them, so the backend would act on a request without, say, the
// Authorization the guard judged), and declared trailers (fields that
// arrive after the body the guard read).
func (h *Handler) checkFraming(x *exchange) *refusal.Refusal {
	for _, v := range x.r.Header.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			switch tok = strings.TrimSpace(tok); {
			case tok == "", strings.EqualFold(tok, "close"), strings.EqualFold(tok, "keep-alive"):
			default:
				return refusal.New(http.StatusBadRequest, refusal.ConnectionHeaderRefused,
					"a Connection header naming other headers is not accepted on a reset route")
			}
		}
	}
	if len(x.r.Trailer) > 0 || x.r.Header.Get("Trailer") != "" {
		return refusal.New(http.StatusBadRequest, refusal.TrailersRefused, "request trailers are not accepted on a reset route")
	}
	return nil
}

// readSessionID finds the session id the request asks to reset: from
// the path (REST), the envelope already read (SOAP) or the body (Agents).
func (h *Handler) readSessionID(x *exchange) *refusal.Refusal {
	var id int32
	var ref *refusal.Refusal
	switch {
	case x.t.Route == classify.REST:
		id, ref = classify.PathSessionID(x.t.IDSegment)
	case x.pre != nil && x.pre.refused != nil:
		ref = x.pre.refused
	case x.pre != nil:
		id = x.pre.call.SessionID
	default:
		id, ref = classify.AgentsSessionID(x.w, x.r, h.MaxRequestBody, time.Duration(h.RequestBodyTimeout))
	}
	if ref != nil {
		return ref
	}
	x.sessionID = id
	return x.planForward()
}

// authenticate finds the caller's one credential and its fingerprint.
func (h *Handler) authenticate(x *exchange) *refusal.Refusal {
	cred, credHeader, err := h.credential(x)
	if err != nil {
		if ref, ok := refusal.As(err); ok {
			return ref
		}
		return refusal.Unauthenticated(refusal.MissingCredentials, false).Wrap(err)
	}
	x.cred, x.credHeader = cred, credHeader
	x.fingerprint = h.fingerprint.Fingerprint(cred)
	return nil
}

// credential finds the caller's one credential, and the headers that
// carry it to the backend's principal and session lookups: the request's
// own, or, for a SOAP call with its ticket in the envelope, a copy with
// that ticket as Authorization.
func (h *Handler) credential(x *exchange) (credential.Credential, http.Header, error) {
	r := x.r
	if x.pre == nil || x.pre.call == nil || !x.pre.call.EnvelopeCredentials {
		cred, err := credential.Parse(r, h.credOpts, x.t.Tenant)
		return cred, r.Header, err
	}
	ticket := x.pre.call.EnvelopeTicket
	if ticket == "" {
		return credential.Credential{}, nil, refusal.Unauthenticated(refusal.MalformedAuthorization, false)
	}
	cred, err := credential.FromSOAPTicket(r, h.credOpts, ticket)
	if err != nil {
		return cred, nil, err
	}
	hdr := r.Header.Clone()
	hdr.Set(credential.HeaderAuthorization, "SoTicket "+ticket)
	return cred, hdr, nil
}

// identify establishes who is calling, for the policy and the record.
func (h *Handler) identify(x *exchange) *refusal.Refusal {
	p, ref := h.id.principal(x.r.Context(), h.fingerprint, x.cred, x.t.Prefix, x.credHeader)
	if ref != nil {
		h.logger.Warn("caller identity not established; refusing", zap.String("request_id", x.requestID),
			zap.String("reason", ref.Reason()), zap.Error(ref.Err))
		return ref
	}
	if ref := tenantMatches(x.t.Tenant, p); ref != nil {
		return ref
	}
	x.principal = p
	return nil
}

// tenantMatches refuses a caller whose verified identity names another
// Online tenant than the path: the guard would decide for Cust999 a reset
// the backend performs in Cust12345. A principal without a tenant (a
// deployment's own bot tokens) or a path without one is not compared.
func tenantMatches(pathTenant string, p *credential.Principal) *refusal.Refusal {
	if pathTenant == "" || p.Tenant == "" || strings.EqualFold(pathTenant, p.Tenant) {
		return nil
	}
	return refusal.Unauthenticated(refusal.TenantMismatch, p.Source == "jwt")
}

// lookupSession reads the session as it is now, when configured, so
// that the policy can depend on its state and owner.
func (h *Handler) lookupSession(x *exchange) *refusal.Refusal {
	if h.lookup == nil {
		return nil
	}
	s, err := h.lookup.ChatSession(x.r.Context(), x.t.Prefix, x.sessionID, x.credHeader)
	if err != nil {
		h.logger.Warn("session lookup failed; refusing", zap.String("request_id", x.requestID), zap.Error(err))
		if ref, ok := refusal.As(err); ok {
			return ref
		}
		return refusal.New(http.StatusServiceUnavailable, refusal.SessionLookupFailed, refusal.MessageSessionLookup).Wrap(err)
	}
	x.session = s
	return nil
}

// refuseUnaudited refuses a reset that could not be recorded durably.
func refuseUnaudited(err error) *refusal.Refusal {
	return refusal.New(http.StatusServiceUnavailable, refusal.AuditUnavailable,
		"the audit trail cannot be written; resets are paused").Wrap(err)
}

// recordIntent makes the decision durable before the backend can act on
// it: an allowed reset is forwarded only once its intent record is in the
// durable file (on disk, under fsync always). A crash after this point
// leaves an intent that the next start closes as unknown.
func (h *Handler) recordIntent(x *exchange) *refusal.Refusal {
	if h.fileSink == nil {
		return nil
	}
	rec := x.record(audit.KindIntent, audit.OutcomeUnknown, "")
	if err := h.fileSink.Write(rec); err != nil {
		h.metrics().auditErrors.Inc()
		h.logger.Error("durable audit intent not written; refusing the reset", zap.String("request_id", x.requestID), zap.Error(err))
		x.verdict = verdictRefused
		return refuseUnaudited(err)
	}
	if rec.Chain != nil {
		x.intentSeq = rec.Chain.Seq
	}
	return nil
}

// requestID is the client's X-Request-Id when it is well-formed, so that
// a client's own correlation id reaches the audit record; otherwise
// Caddy's per-request UUID. A malformed one is not trusted: it would put
// arbitrary bytes in logs and headers.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); validRequestID(v) {
		return v
	}
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		if v, ok := repl.GetString("http.request.uuid"); ok {
			return v
		}
	}
	return ""
}

// validRequestID accepts 1 to 128 characters of [A-Za-z0-9._:-].
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
