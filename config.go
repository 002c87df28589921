package resetguard

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
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

// The bounds Validate enforces beyond "not negative". Each is a ceiling
// or floor past which a config is a mistake rather than a choice.
const (
	// maxPolicyTimeout: a reset waiting longer for a decision is a hung
	// request, and it holds the caller's connection meanwhile.
	maxPolicyTimeout = time.Minute
	// maxBodyBytes: request and response bodies are held in memory.
	maxBodyBytes = 1 << 30
	// maxRequestBodyTimeout: a reset body is a few bytes; a slow client
	// may not hold a connection open for longer.
	maxRequestBodyTimeout = 10 * time.Minute
	// maxWriteTimeout: an audit write stalled longer than this holds the
	// reset it guards; past it the disk is treated as gone.
	maxWriteTimeout = time.Minute
	// minRemotePolling: OPA's downloader polls in whole seconds.
	minRemotePolling = time.Second
	// maxJWTLeeway: more would accept tokens long expired.
	// credential.NewJWTVerifier holds the same ceiling.
	maxJWTLeeway = 5 * time.Minute
	// minJWTMaxTokenBytes: no signed JWT is shorter, so a smaller limit
	// is a typo that would refuse every token.
	minJWTMaxTokenBytes = 64
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

	// AllowNetworkBuiltins permits the policy to call http.send and
	// net.lookup_ip_addr (and JSON Schema $refs to fetch remote schemas).
	// Without it a policy that calls them is refused at load: a decision
	// that depends on another service is slower and can fail in ways the
	// policy's tests do not see. With it they run under Timeout, so a
	// slow service ends in ErrorStatus, never in an allow.
	AllowNetworkBuiltins bool `json:"allow_network_builtins,omitempty"`

	// DecisionLogs sends every evaluated decision, in OPA's decision-log
	// format, to a log service through OPA's decision_logs plugin. Off
	// when unset.
	DecisionLogs *DecisionLogConfig `json:"decision_logs,omitempty"`
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
	// CacheTTL is the longest a verified token is answered from the
	// verified-token cache before its signature is checked again; exp,
	// nbf, iat and the key that signed it are checked on every use all
	// the same. Default 5m, at most 1h; -1 (Caddyfile: off) disables the
	// cache.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// CacheMaxEntries bounds the verified-token cache (least recently
	// used first out). Default 1024.
	CacheMaxEntries int `json:"cache_max_entries,omitempty"`
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
	// many bytes. Default (0) 100 MiB: zero cannot mean "never rotate",
	// because JSON does not tell an explicit 0 from an absent field.
	MaxSize int64 `json:"max_size,omitempty"`
	// WriteTimeout bounds one write or fsync of the file: past it the
	// sink is unhealthy and new resets are refused at once, instead of
	// hanging on a frozen or stalled disk. Default 2s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`
	// ChainKey, when set, keys the hash chain (HMAC-SHA256), so that only
	// a key holder can recompute it after an edit. Placeholders are
	// replaced.
	ChainKey string `json:"chain_key,omitempty"`
}

// Validate enforces every bound of the config, so that a JSON config, an
// admin-API /load and a Caddyfile (which is adapted to this JSON) are
// held to the same rules. A zero field means "use the default" wherever
// the field documents one; anything else out of range is an error naming
// the JSON field path. All problems are reported at once.
//
// Caddy calls Provision before Validate, and Provision fills in the
// defaults, so by the time Caddy calls Validate a negative size would
// already have been replaced. Provision therefore calls Validate first,
// on the config as written and before it opens anything; Caddy's own call
// afterwards repeats the check on the filled-in config, which the
// defaults (all inside the bounds) always pass. A handler built in Go and
// validated without Provision gets the same answer.
//
// What needs I/O or a dependency's own parser (policy files and query,
// JWKS contents, signing algorithms, the bundle signing key) is checked
// where it is loaded, in Provision.
func (h *Handler) Validate() error {
	// In the order of the fields, so that the messages read as the
	// config does.
	errs := []error{
		h.Policy.validate(),
		validateSchemes(h.Schemes),
		validateInputHeaders(h.InputHeaders),
		h.Identity.validate(),
		h.Audit.validate(),
		h.SessionLookup.validate(),
		optionalSize("max_request_body", h.MaxRequestBody, maxBodyBytes),
		optionalSize("max_response_body", h.MaxResponseBody, maxBodyBytes),
		oneOf("errors", h.Errors, ErrorsSuperOffice, ErrorsHandleErrors),
		optionalDuration("request_body_timeout", h.RequestBodyTimeout, 0, maxRequestBodyTimeout),
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	return nil
}

// setDefaults fills the handler-level fields left at zero. It runs after
// Validate, so a zero here can only mean "not configured".
func (h *Handler) setDefaults() {
	if len(h.Schemes) == 0 {
		h.Schemes = []string{"basic", "soticket", "bearer", "xsrf"}
	}
	if h.Realm == "" {
		h.Realm = "SuperOffice"
	}
	if len(h.InputHeaders) == 0 {
		h.InputHeaders = DefaultInputHeaders
	}
	if h.MaxRequestBody == 0 {
		h.MaxRequestBody = DefaultMaxRequestBody
	}
	if h.MaxResponseBody == 0 {
		h.MaxResponseBody = DefaultMaxResponseBody
	}
	if h.RequestBodyTimeout == 0 {
		h.RequestBodyTimeout = caddy.Duration(DefaultRequestBodyTimeout)
	}
	if h.Policy.ErrorStatus == 0 {
		h.Policy.ErrorStatus = http.StatusServiceUnavailable
	}
	if h.Errors == "" {
		h.Errors = ErrorsSuperOffice
	}
}

func validateSchemes(schemes []string) error {
	var errs []error
	for _, s := range schemes {
		if _, err := credential.ParseScheme(s); err != nil {
			errs = append(errs, fmt.Errorf("schemes: %w", err))
		}
	}
	return errors.Join(errs...)
}

// validateInputHeaders keeps credentials out of the policy input: a
// policy's input may be logged (decision logs, dry runs).
func validateInputHeaders(names []string) error {
	var errs []error
	for _, name := range names {
		for _, s := range secretHeaders {
			if strings.EqualFold(name, s) {
				errs = append(errs, fmt.Errorf("input_headers: %s carries a credential and may not reach the policy", name))
			}
		}
	}
	return errors.Join(errs...)
}

func (p *PolicyConfig) validate() error {
	var status error
	if s := p.ErrorStatus; s != 0 && (s < 500 || s > 599) {
		status = &fieldError{path: "policy.error_status", value: strconv.Itoa(s),
			want: "want a 5xx status: a policy failure is not the client's fault"}
	}
	return errors.Join(
		optionalDuration("policy.timeout", p.Timeout, 0, maxPolicyTimeout),
		status,
		p.Remote.validate(),
		p.DecisionLogs.validate(),
	)
}

func (r *RemoteBundle) validate() error {
	if r == nil {
		return nil
	}
	var order error
	// Only both set can disagree: an unset max_delay follows min_delay
	// up, as the policy manager does. A delay under the floor is reported
	// once, by the floor.
	if r.MinDelay >= caddy.Duration(minRemotePolling) && r.MaxDelay >= caddy.Duration(minRemotePolling) && r.MaxDelay < r.MinDelay {
		order = &fieldError{path: "policy.remote.max_delay", value: shortDuration(time.Duration(r.MaxDelay)),
			want: "want at least min_delay (" + shortDuration(time.Duration(r.MinDelay)) + ")"}
	}
	return errors.Join(
		required("policy.remote.url", r.URL),
		required("policy.remote.resource", r.Resource),
		optionalDuration("policy.remote.min_delay", r.MinDelay, minRemotePolling, 0),
		optionalDuration("policy.remote.max_delay", r.MaxDelay, minRemotePolling, 0),
		order,
		optionalDuration("policy.remote.wait", r.Wait, 0, 0),
	)
}

func (s *SessionLookup) validate() error {
	if s == nil {
		return nil
	}
	return errors.Join(
		httpURL("session_lookup.upstream", s.Upstream),
		optionalDuration("session_lookup.timeout", s.Timeout, 0, 0),
	)
}

func (i *Identity) validate() error {
	if i == nil {
		return nil
	}
	return errors.Join(i.JWT.validate(), i.PrincipalLookup.validate())
}

func (j *JWTIdentity) validate() error {
	if j == nil {
		return nil
	}
	var keys error
	switch {
	case j.JWKSFile != "" && j.JWKSURL != "":
		keys = &fieldError{path: "identity.jwt", want: "want jwks_file or jwks_url, not both"}
	case j.JWKSFile == "" && j.JWKSURL == "":
		keys = &fieldError{path: "identity.jwt", want: "want jwks_file or jwks_url"}
	case j.JWKSURL != "":
		keys = httpURL("identity.jwt.jwks_url", j.JWKSURL)
	}
	return errors.Join(
		required("identity.jwt.issuer", j.Issuer),
		names("identity.jwt.audiences", j.Audiences, true),
		keys,
		optionalDuration("identity.jwt.leeway", j.Leeway, 0, maxJWTLeeway),
		optionalDuration("identity.jwt.refresh", j.Refresh, 0, 0),
		optionalDuration("identity.jwt.min_refresh", j.MinRefresh, 0, 0),
		names("identity.jwt.required_claims", j.RequiredClaims, false),
		optionalCount("identity.jwt.max_token_bytes", j.MaxTokenBytes, minJWTMaxTokenBytes),
		durationOrOff("identity.jwt.cache_ttl", j.CacheTTL, credential.MaxJWTCacheTTL),
		optionalCount("identity.jwt.cache_max_entries", j.CacheMaxEntries, 1),
	)
}

func (p *PrincipalLookupIdentity) validate() error {
	if p == nil {
		return nil
	}
	return errors.Join(
		httpURL("identity.principal_lookup.upstream", p.Upstream),
		optionalDuration("identity.principal_lookup.timeout", p.Timeout, 0, 0),
		optionalDuration("identity.principal_lookup.ttl", p.TTL, 0, 0),
		optionalCount("identity.principal_lookup.max_entries", p.MaxEntries, 1),
	)
}

func (a *AuditConfig) validate() error {
	if a == nil {
		return nil
	}
	errs := []error{a.File.validate()}
	// Sorted, so that the same config always gets the same message.
	for _, name := range slices.Sorted(maps.Keys(a.CustomerFields)) {
		errs = append(errs, a.validateCustomerField(name))
	}
	return errors.Join(errs...)
}

// validateCustomerField accepts a field name in any case, as the
// redactor does. A hash needs a key: without one, the hash of a phone
// number is reversed by trying every number.
func (a *AuditConfig) validateCustomerField(name string) error {
	path := "audit.customer_fields." + name
	known := slices.ContainsFunc(slices.Collect(maps.Keys(audit.CustomerFields)), func(f string) bool {
		return strings.EqualFold(f, name)
	})
	if !known {
		return &fieldError{path: path, want: "want one of " + strings.Join(slices.Sorted(maps.Keys(audit.CustomerFields)), ", ")}
	}
	switch how := a.CustomerFields[name]; how {
	case audit.CustomerClear:
		return nil
	case audit.CustomerHash:
		if a.CustomerKey == "" {
			return &fieldError{path: "audit.customer_key", want: "required to hash " + name}
		}
		return nil
	default:
		return &fieldError{path: path, value: strconv.Quote(how), want: "want hash or clear"}
	}
}

func (f *AuditFile) validate() error {
	if f == nil {
		return nil
	}
	return errors.Join(
		required("audit.file.path", f.Path),
		oneOf("audit.file.fsync", f.Fsync, string(audit.FsyncAlways), string(audit.FsyncInterval), string(audit.FsyncNever)),
		optionalDuration("audit.file.fsync_interval", f.FsyncInterval, 0, 0),
		optionalSize("audit.file.max_size", f.MaxSize, 0),
		optionalDuration("audit.file.write_timeout", f.WriteTimeout, 0, maxWriteTimeout),
	)
}
