package refusal

// Reasons are a published contract: they are event.reason in the audit
// record, Reasons in the client's error body, the {http.reset_guard.reasons}
// placeholder and metric labels (README, docs/audit.md). Each is written
// here once.

// Refused before the policy decides: the request itself.
const (
	MethodNotAllowed      = "method_not_allowed"
	MethodOverrideRefused = "method_override_refused"
	BadSessionID          = "bad_session_id"
	RequestBodyTooLarge   = "request_body_too_large"
	RequestBodyTimeout    = "request_body_timeout"
	RequestBodyUnreadable = "request_body_unreadable"
	UnsupportedMediaType  = "unsupported_media_type"
	XMLDTDRefused         = "xml_dtd_refused"
	SOAPActionAmbiguous   = "soap_action_ambiguous"
	SOAPEnvelopeInvalid   = "soap_envelope_invalid"
	// ConnectionHeaderRefused: Connection names headers the proxy would
	// strip after the guard decided.
	ConnectionHeaderRefused = "connection_header_refused"
	// TrailersRefused: trailers would arrive after the guard decided.
	TrailersRefused = "trailers_refused"
	// SessionIDAmbiguous: the request names the session id somewhere a
	// model binder could read it besides the one place the guard read
	// (the query string, a prefixed or nested body field).
	SessionIDAmbiguous = "session_id_ambiguous"
	// PathUnclassifiable: a path naming a reset route's words with more
	// readings than the guard tries (far longer than any client's).
	PathUnclassifiable = "path_unclassifiable"
	// RequestBodyRefused: a REST reset, which takes no body, came with one.
	RequestBodyRefused = "request_body_refused"
)

// Credential refusals (401).
const (
	MissingCredentials     = "missing_credentials"
	MalformedAuthorization = "malformed_authorization"
	MalformedBasic         = "malformed_basic"
	MalformedBearer        = "malformed_bearer"
	DuplicateAuthorization = "duplicate_authorization"
	SchemeNotAccepted      = "scheme_not_accepted"
	TenantMismatch         = "tenant_mismatch"
	XSRFMismatch           = "xsrf_mismatch"
	XSRFEmpty              = "xsrf_empty"
	XSRFCookieMissing      = "xsrf_cookie_missing"
	DuplicateXSRFCookie    = "duplicate_xsrf_cookie"
	DuplicateXSRFHeader    = "duplicate_xsrf_header"
	JWTNotVerifiable       = "jwt_not_verifiable"
)

// Identity refusals: a JWT that does not verify (401), or a backend
// principal lookup that refuses (the backend's status) or fails (503).
const (
	InvalidToken             = "invalid_token"
	TokenMalformed           = "token_malformed"
	TokenTooLarge            = "token_too_large"
	TokenExpired             = "token_expired"
	TokenNotYetValid         = "token_not_yet_valid"
	TokenIssuedInFuture      = "token_issued_in_future"
	AlgNotAllowed            = "alg_not_allowed"
	UnknownKID               = "unknown_kid"
	BadSignature             = "bad_signature"
	WrongIssuer              = "wrong_issuer"
	WrongAudience            = "wrong_audience"
	MissingClaim             = "missing_claim"
	PrincipalUnauthenticated = "principal_unauthenticated"
	PrincipalLookupFailed    = "principal_lookup_failed"
)

// Pre-reset session lookup refusals.
const (
	SessionLookupFailed  = "session_lookup_failed"
	SessionNotFound      = "session_not_found"
	SessionLookupRefused = "session_lookup_refused"
)

// The policy and the audit trail.
const (
	PolicyDenied = "policy_denied"
	// PolicyResultInvalid: the decision was undefined or not a
	// well-formed boolean or decision object; a deny.
	PolicyResultInvalid = "policy_result_invalid"
	PolicyError         = "policy_error"
	PolicyNotReady      = "policy_not_ready"
	AuditUnavailable    = "audit_unavailable"
)

// After forwarding: what the backend's answer was (outcome reasons of an
// allowed reset) or why it could not be had.
const (
	UpstreamError      = "upstream_error"
	UpstreamIncomplete = "upstream_incomplete"
	UpstreamStatus     = "upstream_status"
	UpstreamEmpty      = "upstream_empty"
	UpstreamNoEntity   = "upstream_no_entity"
	EntityNotRead      = "entity_not_read"
	EntityIDMismatch   = "entity_id_mismatch"
	ClientGone         = "client_gone"
	Panic              = "panic"
)

// The durable audit file's own repairs, written by the sink when it opens
// (never sent to a client).
const (
	// GatewayRestarted: the outcome the sink records, at the next start,
	// for an intent whose request was in flight when the gateway stopped:
	// the reset may or may not have reached the backend.
	GatewayRestarted = "gateway_restarted"
	// TornLineCut: a repair record; a torn last line (a write cut short by
	// a crash) was cut from the live file and saved beside it.
	TornLineCut = "torn_line_cut"
)

// Fixed client messages shared by several reasons.
const (
	MessageUnauthenticated = "valid credentials are required to reset a chat session"
	MessageIdentity        = "the caller's identity could not be established"
	MessageSessionLookup   = "the chat session could not be read before the reset"
	MessageBackendFailed   = "the backend could not complete the reset"
	MessageBodyTooLarge    = "the request body is larger than the guard reads"
)
