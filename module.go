// Package resetguard is a Caddy HTTP handler that guards SuperOffice's
// chat-session Reset call (a bot handing a chat to a human): it recognises
// every route to Reset, checks the caller's credential, asks an OPA policy,
// forwards allowed calls to the next handler (reverse_proxy) and writes one
// audit record per guarded request from the ChatSessionEntity returned.
package resetguard

import (
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
	"github.com/resetguard/caddy-resetguard/policy"
)

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

	// KeepURLOverrideHeaders lets X-Original-URL and X-Rewrite-URL through.
	// By default they are removed from every request that passes the
	// handler, reset or not: IIS URL Rewrite and ARR route by them, so
	// they could send the backend to a reset the guard never saw.
	KeepURLOverrideHeaders bool `json:"keep_url_override_headers,omitempty"`

	schemes     []credential.Scheme
	credOpts    credential.Options
	id          *identity
	fingerprint *credential.Fingerprinter
	policy      *policy.Manager
	dlog        *decisionLogger // nil: decision logs off
	lookup      *superoffice.Client
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

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.reset_guard",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
