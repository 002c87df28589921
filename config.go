package resetguard

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
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

// Values of Handler.Errors.
const (
	ErrorsSuperOffice  = "superoffice"
	ErrorsHandleErrors = "handle_errors"
)

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

// Identity configures how the caller's identity (input.principal) is
// established.
type Identity struct {
	// JWT verifies JWT bearer tokens from an identity provider and takes
	// the principal from their claims. Without it JWT-shaped bearer
	// tokens are refused.
	JWT *JWTIdentity `json:"jwt,omitempty"`

	// PrincipalLookup asks the backend who the caller is
	// (GET {prefix}/api/v1/User/currentPrincipal with the caller's own
	// credentials) for Basic, SoTicket, SuperOffice bearer and XSRF
	// callers, and caches the answer.
	PrincipalLookup *PrincipalLookupIdentity `json:"principal_lookup,omitempty"`
}

// JWTIdentity configures JWT verification.
type JWTIdentity struct {
	// Issuer is the exact "iss" required. Required.
	Issuer string `json:"issuer"`
	// Audiences: the token's "aud" must contain one of them. Required.
	Audiences []string `json:"audiences"`
	// Algorithms allowed in "alg". Default RS256, ES256; "none" and HMAC
	// algorithms are refused.
	Algorithms []string `json:"algorithms,omitempty"`
	// Leeway for exp, nbf and iat. Default 30s.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// JWKSFile or JWKSURL names the issuer's key set (one of them).
	JWKSFile string `json:"jwks_file,omitempty"`
	JWKSURL  string `json:"jwks_url,omitempty"`
	// Refresh is the periodic refresh of a JWKS URL. Default 15m.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// MinRefresh rate-limits refreshes triggered by an unknown key id.
	// Default 30s.
	MinRefresh caddy.Duration `json:"min_refresh,omitempty"`
	// RequiredClaims must be present in every token.
	RequiredClaims []string `json:"required_claims,omitempty"`
	// MaxTokenBytes refuses longer tokens before parsing. Default 8192.
	MaxTokenBytes int `json:"max_token_bytes,omitempty"`
	// SubjectClaim, AssociateIDClaim and TenantClaim name the claims
	// mapped to principal.subject, .associate_id and .tenant. Defaults:
	// "sub", SuperOffice's
	// "http://schemes.superoffice.net/identity/associateid" and
	// "http://schemes.superoffice.net/identity/ctx".
	SubjectClaim     string `json:"subject_claim,omitempty"`
	AssociateIDClaim string `json:"associate_id_claim,omitempty"`
	TenantClaim      string `json:"tenant_claim,omitempty"`
}

// PrincipalLookupIdentity configures the backend principal lookup.
type PrincipalLookupIdentity struct {
	// Upstream is the backend's base URL, e.g. http://127.0.0.1:8081.
	Upstream string `json:"upstream"`
	// Timeout bounds one lookup; past it the reset gets 503. Default 2s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// TTL of a cached principal. Default 60s.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// MaxEntries bounds the cache. Default 10000.
	MaxEntries int `json:"max_entries,omitempty"`
}

// AuditConfig configures where records go beyond the Caddy logger, and
// which customer fields (none by default) they may carry.
type AuditConfig struct {
	// File is a durable, hash-chained audit file. While it cannot be
	// written, new resets are refused with 503 before they reach the
	// backend.
	File *AuditFile `json:"file,omitempty"`

	// CustomerFields opts in to customer fields of the returned entity,
	// by SuperOffice name (CustomerName, CustomerEmail, CustomerPhone,
	// CustomerHost, CustomerAlias, CustomerCompanyName), each "hash"
	// (HMAC-SHA256 under CustomerKey) or "clear".
	CustomerFields map[string]string `json:"customer_fields,omitempty"`

	// CustomerKey keys the customer field hashes; placeholders such as
	// {env.KEY} are replaced. Required for "hash".
	CustomerKey string `json:"customer_key,omitempty"`
}

// AuditFile configures the durable file sink.
type AuditFile struct {
	// Path of the live file; rotated files sit beside it.
	Path string `json:"path"`
	// Fsync is "always" (default: every record is on disk before the
	// response is released), "interval" or "never".
	Fsync string `json:"fsync,omitempty"`
	// FsyncInterval for the "interval" mode. Default 1s.
	FsyncInterval caddy.Duration `json:"fsync_interval,omitempty"`
	// MaxSize rotates the file before a record would take it past this
	// many bytes; 0 never rotates. Default 100 MiB.
	MaxSize int64 `json:"max_size,omitempty"`
	// ChainKey, when set, keys the hash chain (HMAC-SHA256), so that only
	// a key holder can recompute it after an edit. Placeholders are
	// replaced.
	ChainKey string `json:"chain_key,omitempty"`
}
