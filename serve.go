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
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/policy"
)

// secretQueryWords: a query parameter whose name, lower-cased and without
// '-', '_' and '.', contains one of these is dropped from the policy
// input, because clients put credentials in query strings under many
// names (access_token, so_apptoken, client_secret, X-XSRF-TOKEN, …).
var secretQueryWords = []string{"token", "ticket", "secret", "password", "passwd", "auth", "key", "jwt", "cookie", "session", "xsrf", "credential"}

// isSecretQueryKey reports whether a query parameter may carry a secret.
func isSecretQueryKey(k string) bool {
	norm := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.':
			return -1
		}
		return unicode.ToLower(r)
	}, k)
	for _, w := range secretQueryWords {
		if strings.Contains(norm, w) {
			return true
		}
	}
	return false
}

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
	// decisionRefused: refused before the policy decided (method,
	// session id, credential, identity, session lookup, audit trail or
	// policy not ready).
	decisionRefused = "refused"
	decisionAllow   = "allow"
	decisionDeny    = "deny"
	// decisionError: the policy could not decide; refused.
	decisionError = "error"
	// decisionDryRun: the policy denied or failed, but dry_run forwarded.
	decisionDryRun = "dry_run"
)

// exchange is one guarded request on its way through the steps.
type exchange struct {
	w http.ResponseWriter
	r *http.Request
	t target
	// pre is the body already read and judged (SOAP route), or nil.
	pre      *bodyCheck
	rec      *audit.Record
	start    time.Time
	audited  bool
	decision string
	// decided is when the guard let the request go or refused it.
	decided time.Time
}

// guard runs steps 2 to 8 of DESIGN.md §1 for a request classified as a
// reset.
func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, t target, pre *bodyCheck) error {
	x := &exchange{w: w, r: r, t: t, pre: pre, start: time.Now(), decision: decisionRefused}
	x.rec = &audit.Record{
		Timestamp: x.start,
		Action:    action,
		Route:     string(t.route),
		Method:    r.Method,
		Path:      r.URL.EscapedPath(),
		SourceIP:  clientIP(r),
		RequestID: requestID(r),
	}
	x.rec.EventID = x.rec.RequestID
	// One id ties the client's view, the backend's logs and the audit
	// record together: echoed to the client, sent on to the backend.
	w.Header().Set("X-Request-Id", x.rec.RequestID)
	r.Header.Set("X-Request-Id", x.rec.RequestID)
	x.rec.UserDomain = t.tenant
	defer func() {
		// A panic further down must not leave the attempt unaudited;
		// Caddy's server turns the re-panic into a 500.
		if p := recover(); p != nil {
			if !x.audited {
				x.rec.Status = http.StatusInternalServerError
				h.emit(x, audit.OutcomeFailure, "panic")
			}
			panic(p)
		}
	}()

	// Nothing is forwarded that cannot be recorded durably.
	if h.fileSink != nil {
		if err := h.fileSink.Healthy(); err != nil {
			h.logger.Error("durable audit file unavailable; refusing resets", zap.Error(err))
			return h.refuse(x, http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot be written; resets are paused")
		}
	}

	// Step 1 (method): only POST reaches Reset.
	if hasMethodOverride(r) {
		return h.refuse(x, http.StatusBadRequest, "method_override_refused", "method override headers are not accepted on a reset route")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.refuse(x, http.StatusMethodNotAllowed, "method_not_allowed", "a chat-session reset must be a POST")
	}

	// Step 2: session id.
	if status, reason, msg := h.readSessionID(x); status != 0 {
		return h.refuse(x, status, reason, msg)
	}

	// Step 3: credential.
	cred, credHeader, err := h.credential(x)
	if err != nil {
		f, _ := credential.AsFailure(err)
		for _, c := range credential.Challenges(h.credOpts, h.Realm, f) {
			w.Header().Add("WWW-Authenticate", c)
		}
		reason := "unauthenticated"
		if f != nil {
			reason = f.Reason
		}
		return h.refuse(x, http.StatusUnauthorized, reason, "valid credentials are required to reset a chat session")
	}
	fp := h.fingerprint.Fingerprint(cred)
	x.rec.CredScheme = string(cred.Scheme)
	x.rec.Fingerprint = fp
	x.rec.UserName = cred.Username
	if cred.Tenant != "" {
		x.rec.UserDomain = cred.Tenant
	}

	// Step 4: principal.
	principal, fail := h.id.principal(r.Context(), h.fingerprint, cred, t.prefix, credHeader)
	if fail != nil {
		h.logger.Warn("caller identity not established; refusing", zap.String("request_id", x.rec.RequestID),
			zap.String("reason", fail.reason), zap.Error(fail.err))
		if fail.status == http.StatusUnauthorized {
			for _, c := range credential.Challenges(h.credOpts, h.Realm, &credential.Failure{Reason: fail.reason, InvalidToken: fail.invalid}) {
				w.Header().Add("WWW-Authenticate", c)
			}
		}
		return h.refuse(x, fail.status, fail.reason, "the caller's identity could not be established")
	}
	if principal.AssociateID != 0 {
		x.rec.UserID = audit.FormatID(int32(principal.AssociateID))
	}
	if n := firstNonEmpty(principal.UserName, principal.Subject); n != "" {
		x.rec.UserName = n
	}
	if principal.Tenant != "" {
		x.rec.UserDomain = principal.Tenant
	}
	x.rec.PrincipalSource = principal.Source

	// Step 4b: the session as it is now, when configured.
	var current map[string]any
	if h.lookup != nil {
		s, err := h.lookup.ChatSession(r.Context(), t.prefix, x.rec.SessionID, credHeader)
		if err != nil {
			rf, ok := refusal.As(err)
			if !ok {
				rf = refusal.New(http.StatusServiceUnavailable, refusal.SessionLookupFailed, refusal.MessageSessionLookup).Wrap(err)
			}
			h.logger.Warn("session lookup failed; refusing", zap.String("request_id", x.rec.RequestID), zap.Error(err))
			return h.refuse(x, rf.Status, rf.Reason(), rf.Message)
		}
		current = s
	}

	// Step 5: policy. The engine is taken once, so a bundle activated
	// meanwhile does not change this request's decision half-way.
	engine := h.policy.Engine()
	if engine == nil {
		return h.refuse(x, http.StatusServiceUnavailable, "policy_not_ready", "no access policy is active yet")
	}
	in := h.input(x, cred, fp)
	in.Session = current
	in.Principal = policyPrincipal(principal)
	evalStart := time.Now()
	dec, err := engine.Eval(r.Context(), in.Value())
	x.rec.Decision = &audit.Decision{
		Allow:    err == nil && dec.Allow,
		DryRun:   h.Policy.DryRun,
		Reasons:  dec.Reasons,
		Query:    engine.Query(),
		Revision: engine.Revision(),
		Eval:     time.Since(evalStart),
	}
	guardMetrics.evalSeconds.Observe(x.rec.Decision.Eval.Seconds())
	switch {
	case err != nil && h.Policy.DryRun, err == nil && !dec.Allow && h.Policy.DryRun:
		x.decision = decisionDryRun
	case err != nil:
		x.decision = decisionError
	case dec.Allow:
		x.decision = decisionAllow
	default:
		x.decision = decisionDeny
	}
	if err != nil && r.Context().Err() != nil {
		// The client left while the policy ran: nothing to answer, but
		// the attempt is still recorded.
		x.rec.Decision.Reasons = []string{"client_gone"}
		return h.refuse(x, statusClientClosed, "client_gone", "the client closed the request")
	}
	if err != nil {
		h.logger.Error("policy evaluation failed; denying", zap.String("request_id", x.rec.RequestID), zap.Error(err))
		x.rec.Decision.Reasons = []string{"policy_error"}
		if !h.Policy.DryRun {
			return h.refuse(x, h.Policy.ErrorStatus, "policy_error", "the access policy could not decide")
		}
	} else if !dec.Allow && !h.Policy.DryRun {
		status := dec.Status
		if status == 0 {
			status = http.StatusForbidden
		}
		for k, vs := range dec.Headers {
			w.Header()[k] = vs
		}
		reasons := dec.Reasons
		if len(reasons) == 0 {
			reasons = []string{"policy_denied"}
		}
		return h.refuseReasons(x, status, reasons, "the access policy does not allow this hand-off")
	} else if dec.Allow {
		// Policy-set headers replace whatever the client sent under the
		// same names, so a client cannot forge them.
		for k, vs := range dec.Headers {
			r.Header[k] = vs
		}
	}

	// Steps 6 to 8: forward, read the entity, audit, release.
	x.decided = time.Now()
	guardMetrics.decisionSeconds.WithLabelValues(x.decision).Observe(x.decided.Sub(x.start).Seconds())
	return h.forward(x, next)
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
		return credential.Credential{}, nil, &credential.Failure{Reason: "malformed_authorization"}
	}
	cred, err := credential.FromSOAPTicket(r, h.credOpts, x.pre.envelopeTicket)
	if err != nil {
		return cred, nil, err
	}
	hdr := r.Header.Clone()
	hdr.Set(credential.HeaderAuthorization, "SoTicket "+x.pre.envelopeTicket)
	return cred, hdr, nil
}

// readSessionID fills x.rec.SessionID, or returns the refusal.
func (h *Handler) readSessionID(x *exchange) (status int, reason, msg string) {
	switch {
	case x.t.route == RouteREST:
		id, err := parseSessionID(x.t.idSegment)
		if err != nil {
			return http.StatusBadRequest, "bad_session_id", err.Error()
		}
		x.rec.SessionID = id
		return 0, "", ""
	case x.pre != nil:
		if x.pre.status != 0 {
			return x.pre.status, x.pre.reason, x.pre.msg
		}
		x.rec.SessionID = x.pre.id
		return 0, "", ""
	}
	r := x.r
	if queryNamesSessionID(r.URL.RawQuery) {
		// The guard reads the id from the body; a second one in the query
		// string, which a model binder might prefer, is ambiguity.
		return http.StatusBadRequest, "bad_session_id", "ChatSessionId must be given in the body only, not in the query string"
	}
	body, status, reason, msg := h.bufferBody(x.w, r)
	if status != 0 {
		return status, reason, msg
	}
	id, err := sessionIDFromBody(r.Header.Get("Content-Type"), body)
	switch {
	case errors.Is(err, errUnsupportedBody):
		return http.StatusUnsupportedMediaType, "unsupported_media_type", "the request body must be JSON, XML or form-encoded"
	case errors.Is(err, errXMLDTD):
		return http.StatusBadRequest, "xml_dtd_refused", "XML document type declarations are not accepted"
	case errors.Is(err, errBadSessionID):
		return http.StatusBadRequest, "bad_session_id", err.Error()
	case err != nil:
		return http.StatusBadRequest, "bad_session_id", "the request body holds no single valid ChatSessionId"
	}
	x.rec.SessionID = id
	return 0, "", ""
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

func (h *Handler) input(x *exchange, cred credential.Credential, fp string) *policy.Input {
	r := x.r
	headers := make(map[string][]string, len(h.InputHeaders))
	for _, name := range h.InputHeaders {
		if vs := r.Header.Values(name); len(vs) > 0 {
			headers[strings.ToLower(name)] = vs
		}
	}
	query := r.URL.Query()
	for k := range query {
		if isSecretQueryKey(k) {
			delete(query, k)
		}
	}
	return &policy.Input{
		Action:    action,
		Route:     string(x.t.route),
		SessionID: x.rec.SessionID,
		Tenant:    x.t.tenant,
		Request: policy.Request{
			ID:       x.rec.RequestID,
			Method:   r.Method,
			Path:     x.rec.Path,
			Host:     r.Host,
			RemoteIP: x.rec.SourceIP,
			Headers:  headers,
			Query:    query,
		},
		Credential: policy.Credential{
			Scheme:      string(cred.Scheme),
			Kind:        string(cred.Kind),
			Fingerprint: fp,
			Tenant:      cred.Tenant,
			Username:    cred.Username,
		},
		Time: x.start,
	}
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
