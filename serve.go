package resetguard

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/classify"
	// Named apart from refuse.go's refusal type until that one goes.
	refusalpkg "github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/policy"
	"github.com/resetguard/caddy-resetguard/session"
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

// ServeHTTP passes every request that cannot reach Reset straight on, and
// guards the rest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	t := classify.Path(r.URL.EscapedPath())
	switch t.Route {
	case classify.None:
		return next.ServeHTTP(w, r)
	case classify.SOAP:
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
	refused *refusalpkg.Refusal
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
	t classify.Target
	// pre is the SOAP call already read and judged, or nil.
	pre      *soapCheck
	rec      *audit.Record
	start    time.Time
	audited  bool
	decision string
	// decided is when the guard let the request go or refused it.
	decided time.Time
}

// guard runs steps 2 to 8 of DESIGN.md §1 for a request classified as a
// reset.
func (h *Handler) guard(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, t classify.Target, pre *soapCheck) error {
	x := &exchange{w: w, r: r, t: t, pre: pre, start: time.Now(), decision: decisionRefused}
	x.rec = &audit.Record{
		Timestamp: x.start,
		Action:    action,
		Route:     string(t.Route),
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
	x.rec.UserDomain = t.Tenant
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
	if classify.MethodOverride(r.Header) {
		return h.refuse(x, http.StatusBadRequest, "method_override_refused", "method override headers are not accepted on a reset route")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return h.refuse(x, http.StatusMethodNotAllowed, "method_not_allowed", "a chat-session reset must be a POST")
	}

	// Step 2: session id.
	if ref := h.readSessionID(x); ref != nil {
		return h.refuse(x, ref.Status, ref.Reason(), ref.Message)
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
	principal, fail := h.id.principal(r.Context(), h.fingerprint, cred, t.Prefix, credHeader)
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
		s, err := h.lookup.Fetch(r.Context(), t.Prefix, x.rec.SessionID, credHeader)
		if err != nil {
			var le *session.Error
			if !errors.As(err, &le) {
				le = &session.Error{Status: http.StatusServiceUnavailable, Reason: "session_lookup_failed", Err: err}
			}
			h.logger.Warn("session lookup failed; refusing", zap.String("request_id", x.rec.RequestID), zap.Error(err))
			return h.refuse(x, le.Status, le.Reason, "the chat session could not be read before the reset")
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
	if x.pre == nil || x.pre.call == nil || !x.pre.call.EnvelopeCredentials {
		cred, err := credential.Parse(r, h.credOpts, x.t.Tenant)
		return cred, r.Header, err
	}
	ticket := x.pre.call.EnvelopeTicket
	if ticket == "" {
		return credential.Credential{}, nil, &credential.Failure{Reason: "malformed_authorization"}
	}
	cred, err := credential.FromSOAPTicket(r, h.credOpts, ticket)
	if err != nil {
		return cred, nil, err
	}
	hdr := r.Header.Clone()
	hdr.Set(credential.HeaderAuthorization, "SoTicket "+ticket)
	return cred, hdr, nil
}

// readSessionID fills x.rec.SessionID from the path, the Agents body or
// the SOAP envelope already read, or returns the refusal.
func (h *Handler) readSessionID(x *exchange) *refusalpkg.Refusal {
	var id int32
	var ref *refusalpkg.Refusal
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
	x.rec.SessionID = id
	return nil
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
		Route:     string(x.t.Route),
		SessionID: x.rec.SessionID,
		Tenant:    x.t.Tenant,
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
