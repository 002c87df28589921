package resetguard

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/session"
)

// methodOverrideHeaders let a client ask a framework to treat a request
// as another method; on a reset route they are refused, not interpreted.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// ServeHTTP passes every request that cannot reach Reset straight on, and
// guards the rest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	t := classify(r.URL.EscapedPath())
	switch t.route {
	case RouteNone:
		return next.ServeHTTP(w, r)
	case RouteSOAP:
		pre, pass := h.inspectSOAP(w, r)
		if pass {
			return next.ServeHTTP(w, r)
		}
		return h.guard(w, r, next, t, pre)
	}
	return h.guard(w, r, next, t, nil)
}

// bodyCheck is the outcome of reading a request body before the guard
// runs: the session id, or the refusal.
type bodyCheck struct {
	id     int32
	status int
	reason string
	msg    string
	// envelopeCred: the SOAP envelope carries Credentials, which the
	// backend authenticates instead of HTTP headers; envelopeTicket is
	// its one Ticket, "" when the Credentials are not exactly that.
	envelopeCred   bool
	envelopeTicket string
}

// inspectSOAP decides whether a request on the Chat.svc path is a
// ResetChatSession call. pass is true for another operation (its body
// restored for the backend) and for bodiless GET/HEAD/OPTIONS requests
// such as the WSDL, which cannot carry an operation; everything else goes
// to the guard with the session id or the reason it is refused.
func (h *Handler) inspectSOAP(w http.ResponseWriter, r *http.Request) (pre *bodyCheck, pass bool) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions) && r.ContentLength == 0 &&
		len(r.TransferEncoding) == 0 && !hasMethodOverride(r) {
		return nil, true
	}
	body, status, reason, msg := h.bufferBody(w, r)
	if status != 0 {
		return &bodyCheck{status: status, reason: reason, msg: msg}, false
	}
	reset, id, err := classifySOAP(soapRequest{
		actions:     r.Header.Values("SOAPAction"),
		contentType: r.Header.Get("Content-Type"),
		pathInfo:    soapPathInfo(r.URL.EscapedPath()),
		body:        body,
	})
	switch {
	case errors.Is(err, errXMLDTD):
		return &bodyCheck{status: http.StatusBadRequest, reason: "xml_dtd_refused", msg: "XML document type declarations are not accepted"}, false
	case errors.Is(err, errSOAPAmbiguous):
		return &bodyCheck{status: http.StatusBadRequest, reason: "soap_action_ambiguous", msg: "the SOAP action headers and the envelope disagree about ResetChatSession"}, false
	case errors.Is(err, errSOAPEnvelope):
		return &bodyCheck{status: http.StatusBadRequest, reason: "soap_envelope_invalid", msg: "the operation of this Chat service call cannot be determined"}, false
	case errors.Is(err, errBadSessionID):
		return &bodyCheck{status: http.StatusBadRequest, reason: "bad_session_id", msg: "the ResetChatSession envelope holds no single valid ChatSessionId"}, false
	case err != nil:
		return &bodyCheck{status: http.StatusBadRequest, reason: "soap_envelope_invalid", msg: "the operation of this Chat service call cannot be determined"}, false
	case !reset:
		return nil, true
	}
	ticket, present, err := envelopeTicket(body)
	if err != nil && !errors.Is(err, errSOAPCredentials) {
		return &bodyCheck{status: http.StatusBadRequest, reason: "soap_envelope_invalid", msg: "the operation of this Chat service call cannot be determined"}, false
	}
	return &bodyCheck{id: id, envelopeCred: present, envelopeTicket: ticket}, false
}

// soapPathInfo returns the normalised segments after the Chat.svc
// segment: WCF path info selecting an endpoint.
func soapPathInfo(escapedPath string) []string {
	segs := normalisePath(escapedPath)
	for i, s := range segs {
		if isChatService(s) {
			return segs[i+1:]
		}
	}
	return nil
}

func hasMethodOverride(r *http.Request) bool {
	for _, name := range methodOverrideHeaders {
		if _, ok := r.Header[name]; ok {
			return true
		}
	}
	return false
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
	t target
	// pre is the body already read and judged (SOAP route), or nil.
	pre *bodyCheck

	start     time.Time
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

	decision *audit.Decision
	verdict  string
	// decided is when the guard let the request go or refused it.
	decided time.Time

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
	(*Handler).readSessionID,
	(*Handler).authenticate,
	(*Handler).identify,
	(*Handler).lookupSession,
	(*Handler).decide,
}

// guard runs steps 2 to 8 of DESIGN.md §1 for a request classified as a
// reset.
func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, t target, pre *bodyCheck) error {
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

func (h *Handler) newExchange(w http.ResponseWriter, r *http.Request, t target, pre *bodyCheck) *exchange {
	x := &exchange{w: w, r: r, t: t, pre: pre, start: time.Now(), verdict: verdictRefused,
		requestID: requestID(r), sourceIP: clientIP(r)}
	// One id ties the client's view, the backend's logs and the audit
	// record together: echoed to the client, sent on to the backend.
	w.Header().Set("X-Request-Id", x.requestID)
	r.Header.Set("X-Request-Id", x.requestID)
	return x
}

// recordPanic keeps a panic further down from leaving the attempt
// unaudited; Caddy's server turns the re-panic into a 500.
func (h *Handler) recordPanic(x *exchange) {
	if p := recover(); p != nil {
		if !x.audited {
			x.status = http.StatusInternalServerError
			h.emit(x, audit.OutcomeFailure, refusal.Panic)
		}
		panic(p)
	}
}

// markDecided notes when the guard let the request go or refused it.
func (x *exchange) markDecided() {
	if x.decided.IsZero() {
		x.decided = time.Now()
		guardMetrics.decisionSeconds.WithLabelValues(x.verdict).Observe(x.decided.Sub(x.start).Seconds())
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
		return refusal.New(http.StatusServiceUnavailable, refusal.AuditUnavailable,
			"the audit trail cannot be written; resets are paused").Wrap(err)
	}
	return nil
}

// checkMethod: only a plain POST reaches Reset.
func (h *Handler) checkMethod(x *exchange) *refusal.Refusal {
	if hasMethodOverride(x.r) {
		return refusal.New(http.StatusBadRequest, refusal.MethodOverrideRefused,
			"method override headers are not accepted on a reset route")
	}
	if x.r.Method != http.MethodPost {
		return refusal.New(http.StatusMethodNotAllowed, refusal.MethodNotAllowed,
			"a chat-session reset must be a POST").WithHeader("Allow", http.MethodPost)
	}
	return nil
}

// authenticate finds the caller's one credential and its fingerprint.
func (h *Handler) authenticate(x *exchange) *refusal.Refusal {
	cred, credHeader, err := h.credential(x)
	if err != nil {
		f, _ := credential.AsFailure(err)
		reason, invalid := refusal.MissingCredentials, false
		if f != nil {
			reason, invalid = f.Reason, f.InvalidToken
		}
		return refusal.Unauthenticated(reason, invalid).Wrap(err)
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
	if x.pre == nil || !x.pre.envelopeCred {
		cred, err := credential.Parse(r, h.credOpts, x.t.tenant)
		return cred, r.Header, err
	}
	if x.pre.envelopeTicket == "" {
		return credential.Credential{}, nil, &credential.Failure{Reason: refusal.MalformedAuthorization}
	}
	cred, err := credential.FromSOAPTicket(r, h.credOpts, x.pre.envelopeTicket)
	if err != nil {
		return cred, nil, err
	}
	hdr := r.Header.Clone()
	hdr.Set(credential.HeaderAuthorization, "SoTicket "+x.pre.envelopeTicket)
	return cred, hdr, nil
}

// identify establishes who is calling, for the policy and the record.
func (h *Handler) identify(x *exchange) *refusal.Refusal {
	p, fail := h.id.principal(x.r.Context(), h.fingerprint, x.cred, x.t.prefix, x.credHeader)
	if fail != nil {
		h.logger.Warn("caller identity not established; refusing", zap.String("request_id", x.requestID),
			zap.String("reason", fail.reason), zap.Error(fail.err))
		ref := refusal.New(fail.status, fail.reason, refusal.MessageIdentity).Wrap(fail.err)
		ref.InvalidToken = fail.invalid
		return ref
	}
	x.principal = p
	return nil
}

// lookupSession reads the session as it is now, when configured, so
// that the policy can depend on its state and owner.
func (h *Handler) lookupSession(x *exchange) *refusal.Refusal {
	if h.lookup == nil {
		return nil
	}
	s, err := h.lookup.Fetch(x.r.Context(), x.t.prefix, x.sessionID, x.credHeader)
	if err != nil {
		h.logger.Warn("session lookup failed; refusing", zap.String("request_id", x.requestID), zap.Error(err))
		var le *session.Error
		if !errors.As(err, &le) {
			le = &session.Error{Status: http.StatusServiceUnavailable, Reason: refusal.SessionLookupFailed, Err: err}
		}
		return refusal.New(le.Status, le.Reason, refusal.MessageSessionLookup).Wrap(err)
	}
	x.session = s
	return nil
}

// readSessionID finds the session id the request asks to reset: from
// the path (REST), the envelope already read (SOAP) or the body (Agents).
func (h *Handler) readSessionID(x *exchange) *refusal.Refusal {
	switch {
	case x.t.route == RouteREST:
		id, err := parseSessionID(x.t.idSegment)
		if err != nil {
			return refusal.New(http.StatusBadRequest, refusal.BadSessionID, err.Error())
		}
		x.sessionID = id
		return nil
	case x.pre != nil:
		if x.pre.status != 0 {
			return refusal.New(x.pre.status, x.pre.reason, x.pre.msg)
		}
		x.sessionID = x.pre.id
		return nil
	}
	r := x.r
	if queryNamesSessionID(r.URL.RawQuery) {
		// The guard reads the id from the body; a second one in the query
		// string, which a model binder might prefer, is ambiguity.
		return refusal.New(http.StatusBadRequest, refusal.BadSessionID, "ChatSessionId must be given in the body only, not in the query string")
	}
	body, status, reason, msg := h.bufferBody(x.w, r)
	if status != 0 {
		return refusal.New(status, reason, msg)
	}
	id, err := sessionIDFromBody(r.Header.Get("Content-Type"), body)
	switch {
	case errors.Is(err, errUnsupportedBody):
		return refusal.New(http.StatusUnsupportedMediaType, refusal.UnsupportedMediaType, "the request body must be JSON, XML or form-encoded")
	case errors.Is(err, errXMLDTD):
		return refusal.New(http.StatusBadRequest, refusal.XMLDTDRefused, "XML document type declarations are not accepted")
	case errors.Is(err, errBadSessionID):
		return refusal.New(http.StatusBadRequest, refusal.BadSessionID, err.Error())
	case err != nil:
		return refusal.New(http.StatusBadRequest, refusal.BadSessionID, "the request body holds no single valid ChatSessionId")
	}
	x.sessionID = id
	return nil
}

// queryNamesSessionID reports whether a query string has a parameter a
// model binder could take for ChatSessionId: the name itself or a
// prefixed one (request.ChatSessionId), in any case, encoded or not.
func queryNamesSessionID(rawQuery string) bool {
	if rawQuery == "" {
		return false
	}
	for _, part := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		name = strings.TrimSpace(name)
		if len(name) >= len(agentsIDField) && strings.EqualFold(name[len(name)-len(agentsIDField):], agentsIDField) {
			return true
		}
	}
	return false
}

// bufferBody reads a reset route's request body, bounded in size
// (MaxRequestBody) and time (RequestBodyTimeout, so a client that
// declares a body and never sends it cannot hold the guard), and
// restores it for the backend exactly as the client sent it.
func (h *Handler) bufferBody(w http.ResponseWriter, r *http.Request) (body []byte, status int, reason, msg string) {
	if r.ContentLength > h.MaxRequestBody {
		return nil, http.StatusRequestEntityTooLarge, "request_body_too_large", "the request body is larger than the guard reads"
	}
	// A deadline on the connection interrupts a read blocked on a silent
	// client; Caddy's idle-timeout reader takes it as a ceiling. A writer
	// that cannot set deadlines (tests) falls back to the server's own
	// timeouts.
	rc := http.NewResponseController(w)
	deadlineSet := rc.SetReadDeadline(time.Now().Add(time.Duration(h.RequestBodyTimeout))) == nil
	body, err := io.ReadAll(io.LimitReader(r.Body, h.MaxRequestBody+1))
	if deadlineSet {
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's read side is spent: it cannot carry
			// another request.
			w.Header().Set("Connection", "close")
			return nil, http.StatusRequestTimeout, "request_body_timeout", "the request body did not arrive in time"
		}
		return nil, http.StatusBadRequest, "request_body_unreadable", "the request body could not be read"
	}
	if int64(len(body)) > h.MaxRequestBody {
		return nil, http.StatusRequestEntityTooLarge, "request_body_too_large", "the request body is larger than the guard reads"
	}
	// The backend must receive the body exactly as the client sent it.
	_ = r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return body, 0, "", ""
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
