// Package resetguard is a Caddy HTTP handler that guards SuperOffice's
// chat-session Reset call (a bot handing a chat to a human): it recognises
// every route to Reset, checks the caller's credential, asks an OPA policy,
// forwards allowed calls to the next handler (reverse_proxy) and writes one
// audit record per guarded request from the ChatSessionEntity returned.
package resetguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/policy"
	"github.com/resetguard/caddy-resetguard/session"
)

// Defaults for the size bounds.
const (
	DefaultMaxRequestBody  = 64 << 10
	DefaultMaxResponseBody = 1 << 20
	// DefaultRequestBodyTimeout bounds a reset route's body read.
	DefaultRequestBodyTimeout = 10 * time.Second
	// statusClientClosed is nginx's and Caddy's status for a request the
	// client abandoned.
	statusClientClosed = 499
	// action is the policy input's and audit record's action name.
	action = "chat_session.reset"
)

// DefaultInputHeaders are the request headers copied into the policy
// input when the config names none. It is an allow-list: a deny-list would
// leak any secret header nobody thought of.
var DefaultInputHeaders = []string{"User-Agent", "Accept", "Content-Type", "X-Request-Id", "X-Forwarded-For"}

// secretHeaders may never be copied into policy input.
var secretHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Xsrf-Token", "So-Apptoken"}

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

// Handler guards chat-session resets. Its JSON config is the module
// http.handlers.reset_guard.
type Handler struct {
	// Policy configures the OPA policy that decides each reset.
	Policy PolicyConfig `json:"policy"`

	// Schemes lists the accepted credential schemes: any of "basic",
	// "soticket", "bearer", "xsrf". Default: all four.
	Schemes []string `json:"schemes,omitempty"`

	// Realm is the realm named in WWW-Authenticate challenges. Default
	// "SuperOffice".
	Realm string `json:"realm,omitempty"`

	// FingerprintKey keys the HMAC-SHA256 credential fingerprints in
	// policy input and audit records. Placeholders such as {env.KEY} are
	// replaced at provision time. Default: a random key per process, so
	// fingerprints correlate calls within one process only.
	FingerprintKey string `json:"fingerprint_key,omitempty"`

	// InputHeaders are the request headers copied into the policy input's
	// request.headers (lower-cased names). Credential-bearing headers are
	// refused here. Default: User-Agent, Accept, Content-Type,
	// X-Request-Id, X-Forwarded-For.
	InputHeaders []string `json:"input_headers,omitempty"`

	// Identity establishes who is calling: JWT verification and/or a
	// backend principal lookup. Without it input.principal.source is
	// "none" and JWT bearer tokens are refused.
	Identity *Identity `json:"identity,omitempty"`

	// Audit adds a durable, hash-chained audit file and opt-in customer
	// fields to the records, which always go to the Caddy logger
	// http.handlers.reset_guard.audit.
	Audit *AuditConfig `json:"audit,omitempty"`

	// SessionLookup, when set, fetches the current ChatSessionEntity from
	// the backend before the policy decides and puts it (without
	// SessionKey, chat text and customer data) in input.session.
	SessionLookup *SessionLookup `json:"session_lookup,omitempty"`

	// MaxRequestBody bounds the body read from an Agents
	// ResetChatSession request to find the session id; larger bodies get
	// 413. Default 64 KiB.
	MaxRequestBody int64 `json:"max_request_body,omitempty"`

	// MaxResponseBody bounds the upstream response held back for the
	// audit record; larger bodies stream through and the record says the
	// entity was not read. Default 1 MiB.
	MaxResponseBody int64 `json:"max_response_body,omitempty"`

	// Name labels this handler in the admin status endpoint
	// (GET /reset_guard/status), so that an operator can tell several
	// guarded sites apart. Optional.
	Name string `json:"name,omitempty"`

	// Errors chooses who writes a refusal's body. "superoffice" (the
	// default): the guard writes the SuperOffice WebAPI error shape
	// itself, as JSON or XML after the client's Accept. "handle_errors":
	// the guard returns the refusal as a caddyhttp.HandlerError, so that
	// the server's handle_errors routes write the response, with the
	// {http.reset_guard.*} and {http.error.*} placeholders (a server
	// without error routes then sends the status with an empty body).
	// Either way the audit record is written first.
	Errors string `json:"errors,omitempty"`
	// RequestBodyTimeout bounds reading a reset route's request body
	// (Agents, SOAP); a client that declares a body and stalls gets 408.
	// Default 10s.
	RequestBodyTimeout caddy.Duration `json:"request_body_timeout,omitempty"`

	schemes     []credential.Scheme
	credOpts    credential.Options
	id          *identity
	fingerprint *credential.Fingerprinter
	policy      *policy.Manager
	lookup      *session.Lookup
	customer    *audit.CustomerRedactor
	fileSink    *audit.FileSink
	fileSinkKey string
	sink        *audit.Sink
	logger      *zap.Logger
	// instance numbers this handler in the status endpoint.
	instance    uint64
	provisioned time.Time
	counts      *outcomeCounts
	// remoteShown is the bundle service as the status route shows it:
	// placeholders replaced, credentials in the URL dropped.
	remoteShown string
}

// PolicyConfig is the policy part of the config.
type PolicyConfig struct {
	// Paths are Rego files, JSON/YAML data files or directories of them
	// (recursive; *_test.rego files are skipped). Required.
	Paths []string `json:"paths,omitempty"`

	// Bundles are local OPA bundles: directories or .tar.gz files.
	Bundles []string `json:"bundles,omitempty"`

	// Remote is a bundle service polled with OPA's bundle protocol. A new
	// bundle revision replaces the active policy without a config reload;
	// one that fails to download, verify or compile is rejected and the
	// previous policy stays active.
	Remote *RemoteBundle `json:"remote,omitempty"`

	// Query is the decision query. Its value must be a boolean or an
	// object {"allow": bool, "reasons": [..], "status": int, "headers":
	// {..}}. Default "data.resetguard.allow".
	Query string `json:"query,omitempty"`

	// Timeout bounds one evaluation; past it the request is denied with
	// ErrorStatus. Default 100ms.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// ErrorStatus is the status sent when the policy cannot decide
	// (evaluation error or timeout). Default 503.
	ErrorStatus int `json:"error_status,omitempty"`

	// DryRun evaluates and audits every decision but forwards the
	// request whatever it says: for trying a new policy on live traffic.
	DryRun bool `json:"dry_run,omitempty"`
}

// SessionLookup configures the pre-reset session lookup.
type SessionLookup struct {
	// Upstream is the backend's base URL, e.g. http://127.0.0.1:8081.
	// The lookup goes to {upstream}{prefix}/api/v1/ChatSession/{id} with
	// the caller's own credential headers.
	Upstream string `json:"upstream"`
	// Timeout bounds the lookup; past it the reset is refused with 503
	// (session_lookup_failed). Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// RemoteBundle configures a bundle service.
type RemoteBundle struct {
	// URL is the service's base URL.
	URL string `json:"url"`
	// Resource is the bundle's path on the service, e.g.
	// bundles/resetguard.tar.gz.
	Resource string `json:"resource"`
	// MinDelay and MaxDelay bound the polling interval (whole seconds).
	// Default 10s and 60s.
	MinDelay caddy.Duration `json:"min_delay,omitempty"`
	MaxDelay caddy.Duration `json:"max_delay,omitempty"`
	// Headers are sent with every download; placeholders such as
	// {env.TOKEN} are replaced.
	Headers map[string]string `json:"headers,omitempty"`
	// PublicKeyFile is a PEM public key; when set, bundles must carry a
	// signature that verifies against it.
	PublicKeyFile string `json:"public_key_file,omitempty"`
	// KeyID is the key id in the signature. Default "resetguard".
	KeyID string `json:"key_id,omitempty"`
	// Algorithm of the signature. Default RS256.
	Algorithm string `json:"algorithm,omitempty"`
	// Scope the signature must carry, if any.
	Scope string `json:"scope,omitempty"`
	// Wait is how long config load waits for the first bundle. Until one
	// activates, guarded resets get 503 (policy_not_ready). Default 5s.
	Wait caddy.Duration `json:"wait,omitempty"`
}

// engineConfig is the policy engine's view of the local policy sources.
func (p *PolicyConfig) engineConfig() policy.Config {
	return policy.Config{
		Paths:   p.Paths,
		Bundles: p.Bundles,
		Query:   p.Query,
		Timeout: time.Duration(p.Timeout),
	}
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.reset_guard",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision prepares the policy and the credential settings once, so that
// a request pays only for evaluation.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.sink = audit.NewSink(h.logger.Named("audit"))
	// First: the identity and policy set up below hook into the metrics.
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}

	if len(h.Schemes) == 0 {
		h.Schemes = []string{"basic", "soticket", "bearer", "xsrf"}
	}
	h.schemes = h.schemes[:0]
	for _, s := range h.Schemes {
		sc, err := credential.ParseScheme(s)
		if err != nil {
			return fmt.Errorf("reset_guard: schemes: %w", err)
		}
		h.schemes = append(h.schemes, sc)
	}
	if h.Realm == "" {
		h.Realm = "SuperOffice"
	}
	if len(h.InputHeaders) == 0 {
		h.InputHeaders = DefaultInputHeaders
	}
	if h.MaxRequestBody <= 0 {
		h.MaxRequestBody = DefaultMaxRequestBody
	}
	if h.MaxResponseBody <= 0 {
		h.MaxResponseBody = DefaultMaxResponseBody
	}
	if h.RequestBodyTimeout <= 0 {
		h.RequestBodyTimeout = caddy.Duration(DefaultRequestBodyTimeout)
	}
	if h.Policy.ErrorStatus == 0 {
		h.Policy.ErrorStatus = http.StatusServiceUnavailable
	}
	if h.Errors == "" {
		h.Errors = ErrorsSuperOffice
	}
	key := caddy.NewReplacer().ReplaceKnown(h.FingerprintKey, "")
	h.fingerprint = credential.NewFingerprinter([]byte(key))

	if sl := h.SessionLookup; sl != nil {
		upstream := caddy.NewReplacer().ReplaceKnown(sl.Upstream, "")
		u, err := url.Parse(upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("reset_guard: session_lookup upstream %q: want an http(s) URL", sl.Upstream)
		}
		timeout := time.Duration(sl.Timeout)
		if timeout <= 0 {
			timeout = 2 * time.Second
		}
		h.lookup = &session.Lookup{Upstream: upstream, Timeout: timeout, Client: &http.Client{
			// A lookup never follows a redirect: it could carry the
			// caller's credential elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	}
	if err := h.Audit.provision(h); err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	id, err := h.Identity.provision(ctx)
	if err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	h.id = id
	h.credOpts = credential.Options{Schemes: h.schemes, AcceptJWT: id.jwt != nil}
	remote, wait, err := h.Policy.remote()
	if err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	if remote != nil {
		h.remoteShown = redactURL(remote.URL) + " " + remote.Resource
		remote.OnActivate = func(string) { guardMetrics.bundleActivations.Inc() }
		remote.OnReject = func(error) { guardMetrics.bundleRejections.Inc() }
	}
	pm, err := policy.NewManager(ctx, h.Policy.engineConfig(), remote, wait, h.logger)
	if err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	h.policy = pm
	h.provisioned = time.Now()
	h.counts = new(outcomeCounts)
	registerHandler(h)
	// Cleanup unregisters too; this also covers a handler provisioned
	// outside a Caddy config (tests, embedding), whose Cleanup nobody
	// calls.
	go func() {
		<-ctx.Done()
		unregisterHandler(h)
	}()
	h.logger.Info("policy prepared",
		zap.String("query", pm.Query()),
		zap.String("policy_revision", pm.Status().Revision),
		zap.Bool("remote_bundle", remote != nil),
		zap.Bool("dry_run", h.Policy.DryRun))
	return nil
}

// remote turns the remote bundle config into the policy package's.
func (p *PolicyConfig) remote() (*policy.Remote, time.Duration, error) {
	r := p.Remote
	if r == nil {
		return nil, 0, nil
	}
	repl := caddy.NewReplacer()
	out := &policy.Remote{
		URL:       repl.ReplaceKnown(r.URL, ""),
		Resource:  r.Resource,
		MinDelay:  time.Duration(r.MinDelay),
		MaxDelay:  time.Duration(r.MaxDelay),
		KeyID:     r.KeyID,
		Algorithm: r.Algorithm,
		Scope:     r.Scope,
		Headers:   make(map[string]string, len(r.Headers)),
	}
	for k, v := range r.Headers {
		out.Headers[k] = repl.ReplaceKnown(v, "")
	}
	if r.PublicKeyFile != "" {
		pem, err := os.ReadFile(r.PublicKeyFile)
		if err != nil {
			return nil, 0, fmt.Errorf("remote bundle public key: %w", err)
		}
		out.PublicKey = string(pem)
	}
	wait := time.Duration(r.Wait)
	if wait == 0 {
		wait = 5 * time.Second
	}
	return out, wait, nil
}

// Cleanup stops bundle polling and JWKS refreshes of this config.
func (h *Handler) Cleanup() error {
	unregisterHandler(h)
	if h.policy != nil {
		h.policy.Stop(context.Background())
	}
	h.id.close()
	if h.fileSinkKey != "" {
		if _, err := fileSinks.Delete(h.fileSinkKey); err != nil {
			return fmt.Errorf("reset_guard: closing the audit file: %w", err)
		}
	}
	return nil
}

// Validate refuses configs that would leak secrets or can never work.
func (h *Handler) Validate() error {
	for _, name := range h.InputHeaders {
		for _, s := range secretHeaders {
			if strings.EqualFold(name, s) {
				return fmt.Errorf("reset_guard: input_headers: %s carries a credential and may not reach the policy", name)
			}
		}
	}
	if h.Errors != ErrorsSuperOffice && h.Errors != ErrorsHandleErrors {
		return fmt.Errorf("reset_guard: errors %q: want %q or %q", h.Errors, ErrorsSuperOffice, ErrorsHandleErrors)
	}
	if s := h.Policy.ErrorStatus; s < 500 || s > 599 {
		return fmt.Errorf("reset_guard: policy error_status %d: must be a 5xx status, a policy failure is not the client's fault", s)
	}
	return nil
}

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

// Values of Handler.Errors.
const (
	ErrorsSuperOffice  = "superoffice"
	ErrorsHandleErrors = "handle_errors"
)

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
		s, err := h.lookup.Fetch(r.Context(), t.prefix, x.rec.SessionID, credHeader)
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
		cs, derr := audit.DecodeEntity(held.buf.Bytes(), up.ContentType, held.Header().Get("Content-Encoding"), h.MaxResponseBody)
		switch {
		case errors.Is(derr, audit.ErrNoEntity):
			outcome, reason = audit.OutcomeFailure, "upstream_no_entity"
			up.EntityError = derr.Error()
		case derr != nil:
			outcome, reason = audit.OutcomeUnknown, "entity_not_read"
			up.EntityError = derr.Error()
		default:
			up.EntityRead = true
			x.rec.ChatSession = cs
			if h.customer != nil {
				if c, err := h.customer.Fields(held.buf.Bytes(), up.ContentType, held.Header().Get("Content-Encoding"), h.MaxResponseBody); err == nil {
					x.rec.Customer = c
				}
			}
			if x.rec.SessionID > 0 && cs.ID != x.rec.SessionID {
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

// refuse records the refusal and answers it.
func (h *Handler) refuse(x *exchange, status int, reason, msg string) error {
	return h.refuseReasons(x, status, []string{reason}, msg)
}

func (h *Handler) refuseReasons(x *exchange, status int, reasons []string, msg string) error {
	if x.decided.IsZero() {
		x.decided = time.Now()
		guardMetrics.decisionSeconds.WithLabelValues(x.decision).Observe(x.decided.Sub(x.start).Seconds())
	}
	x.rec.Status = status
	reason := strings.Trim(strings.Join(reasons, ","), ",")
	if reason == "" {
		reason = "policy_denied" // a policy may name an empty reason
	}
	h.emit(x, audit.OutcomeFailure, reason)
	return h.respondError(x, newErrorBody(status, reasons, msg, x.rec.RequestID))
}

// refuseForwarded answers an allowed request whose upstream failed.
func (h *Handler) refuseForwarded(x *exchange, status int, reason string) error {
	x.rec.Status = status
	h.emit(x, audit.OutcomeFailure, reason)
	return h.respondError(x, newErrorBody(status, []string{reason}, "the backend could not complete the reset", x.rec.RequestID))
}

// respondError sends a refusal whose record is already written: the body
// itself, or, with errors handle_errors, a caddyhttp.HandlerError for the
// server's error routes, which find the body's fields in placeholders.
func (h *Handler) respondError(x *exchange, b errorBody) error {
	if repl, ok := x.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Set("http.reset_guard.error_type", b.ErrorType)
		repl.Set("http.reset_guard.error_message", b.ErrorMessage)
		repl.Set("http.reset_guard.error_body", string(b.json()))
		// The reasons the client is told, also when an allowed reset
		// failed at the backend (upstream_error, not the policy's).
		repl.Set("http.reset_guard.reasons", strings.Join(b.Reasons, ","))
	}
	if h.Errors == ErrorsHandleErrors {
		return caddyhttp.Error(b.Status, &refusal{body: b})
	}
	writeError(x.w, x.r, b)
	return nil
}

// refusal is the error a refused reset returns with errors handle_errors;
// its text is {http.error.message}. It holds fixed texts and policy
// reasons only, never request data.
type refusal struct{ body errorBody }

func (e *refusal) Error() string {
	return "reset_guard: " + e.body.ErrorType + ": " + e.body.ErrorMessage + " (" + strings.Join(e.body.Reasons, ",") + ")"
}

// emit writes the record once, and publishes the outcome as placeholders
// before any response leaves, so that deferred header operations, error
// routes and access logs see them.
func (h *Handler) emit(x *exchange, outcome, reason string) {
	if x.audited {
		return
	}
	x.audited = true
	x.rec.Allowed = x.rec.Upstream != nil
	x.rec.Outcome = outcome
	x.rec.Reason = reason
	x.rec.Duration = time.Since(x.start)
	h.writeRecord(x.rec)
	typ := "denied"
	if x.rec.Allowed {
		typ = "allowed"
	}
	scheme := x.rec.CredScheme
	if scheme == "" {
		scheme = "none"
	}
	guardMetrics.requests.WithLabelValues(x.rec.Route, typ, outcome, scheme).Inc()
	h.counts.add(typ, outcome)
	h.setPlaceholders(x)
}

// setPlaceholders sets {http.reset_guard.*} on the request's replacer.
// None of them can carry a credential: the principal is a user name,
// subject or associate id, never a token.
func (h *Handler) setPlaceholders(x *exchange) {
	repl, ok := x.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	var reasons []string
	if d := x.rec.Decision; d != nil && len(d.Reasons) > 0 {
		reasons = d.Reasons
	} else if x.rec.Reason != "" {
		reasons = []string{x.rec.Reason}
	}
	sessionID := ""
	if x.rec.SessionID > 0 {
		sessionID = strconv.FormatInt(int64(x.rec.SessionID), 10)
	}
	repl.Set("http.reset_guard.decision", x.decision)
	repl.Set("http.reset_guard.session_id", sessionID)
	repl.Set("http.reset_guard.principal", firstNonEmpty(x.rec.UserName, x.rec.UserID))
	repl.Set("http.reset_guard.reasons", strings.Join(reasons, ","))
	repl.Set("http.reset_guard.event_id", x.rec.EventID)
	repl.Set("http.reset_guard.request_id", x.rec.RequestID)
	repl.Set("http.reset_guard.outcome", x.rec.Outcome)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
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

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
