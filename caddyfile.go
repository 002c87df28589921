package resetguard

import (
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/resetguard/caddy-resetguard/audit"
)

func init() {
	caddy.RegisterModule(new(Handler))
	httpcaddyfile.RegisterHandlerDirective("reset_guard", parseCaddyfile)
	// With the authentication directives: after rewrite, uri, basic_auth,
	// forward_auth and request_header, so the guard decides on the request
	// as those leave it, and before handle, handle_path and route, so no
	// routing block can run a proxy without it.
	httpcaddyfile.RegisterDirectiveOrder("reset_guard", httpcaddyfile.After, "request_header")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Handler)
	if err := g.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return g, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	reset_guard [<policy_paths...>] {
//	    policy <paths...> {
//	        bundle       <dir or .tar.gz...>
//	        remote <url> <resource> {
//	            polling         <min> <max>
//	            header          <name> <value>
//	            public_key_file <pem file>
//	            key_id          <id>
//	            algorithm       <alg>
//	            scope           <scope>
//	            wait            <duration>
//	        }
//	        query        <rego query>
//	        timeout      <duration>
//	        error_status <5xx>
//	        dry_run
//	        allow_network_builtins
//	    }
//	    schemes          <basic|soticket|bearer|xsrf...>
//	    realm            <realm>
//	    fingerprint_key  <key or {env.VAR}>
//	    input_headers    <header names...>
//	    audit {
//	        file <path> {
//	            fsync always | interval [<duration>] | never
//	            max_size <size>
//	            write_timeout <duration>
//	            chain_key <key>
//	        }
//	        customer_field <CustomerName|CustomerEmail|...> hash|clear
//	        customer_key <key>
//	    }
//	    identity {
//	        jwt {
//	            issuer <iss>
//	            audience <aud...>
//	            algorithms <alg...>
//	            leeway <duration>
//	            jwks_file <file> | jwks_url <url>
//	            refresh <duration>
//	            min_refresh <duration>
//	            required_claims <claim...>
//	            max_token_bytes <n>
//	            cache_ttl <duration> | off
//	            cache_max_entries <n>
//	            subject_claim | associate_id_claim | tenant_claim <claim>
//	        }
//	        principal_lookup <upstream url> {
//	            timeout <duration>
//	            ttl <duration>
//	            max_entries <n>
//	        }
//	    }
//	    session_lookup   <upstream url> {
//	        timeout <duration>
//	    }
//	    max_request_body <size>
//	    max_response_body <size>
//	    name             <label in the admin status route>
//	    errors           superoffice | handle_errors
//	    request_body_timeout <duration>
//	}
//
// The policy sub-options may also stand directly in the reset_guard block
// (query, policy_timeout, policy_error_status, dry_run).
//
// The parser only converts tokens: it refuses a wrong argument count, an
// unknown option and a value that is not a duration, size or number at
// all. Whether a value is in range is Validate's question, asked of the
// adapted JSON at load exactly as of a JSON config, so that both forms
// are held to one set of bounds with one set of messages.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Policy.Paths = append(h.Policy.Paths, d.RemainingArgs()...)
	return block(d, h, handlerOptions, "reset_guard")
}

// option converts one option of a block into cfg; the dispenser stands on
// the option's name.
type option[T any] func(cfg *T, d *caddyfile.Dispenser) error

// block reads the options of a { } block that opens on the current line.
func block[T any](d *caddyfile.Dispenser, cfg *T, options map[string]option[T], what string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt, ok := options[d.Val()]
		if !ok {
			return d.Errf("unrecognized %s option %q", what, d.Val())
		}
		if err := opt(cfg, d); err != nil {
			return err
		}
	}
	return nil
}

// The option tables: each Caddyfile option of a block, and the function
// that sets the JSON field it stands for.
var handlerOptions = map[string]option[Handler]{
	"policy":                    unmarshalPolicy,
	"query":                     policyShorthand("query"),
	"dry_run":                   policyShorthand("dry_run"),
	"policy_timeout":            policyShorthand("timeout"),
	"policy_error_status":       policyShorthand("error_status"),
	"schemes":                   listOption(func(h *Handler) *[]string { return &h.Schemes }),
	"realm":                     stringOption(func(h *Handler) *string { return &h.Realm }),
	"fingerprint_key":           stringOption(func(h *Handler) *string { return &h.FingerprintKey }),
	"name":                      stringOption(func(h *Handler) *string { return &h.Name }),
	"errors":                    stringOption(func(h *Handler) *string { return &h.Errors }),
	"keep_url_override_headers": flagOption(func(h *Handler) *bool { return &h.KeepURLOverrideHeaders }),
	"input_headers":             listOption(func(h *Handler) *[]string { return &h.InputHeaders }),
	"audit":                     subBlock("audit", auditOptions, noArgs, func(h *Handler, a *AuditConfig) { h.Audit = a }),
	"identity":                  subBlock("identity", identityOptions, noArgs, func(h *Handler, id *Identity) { h.Identity = id }),
	"session_lookup": subBlock("session_lookup", sessionLookupOptions, func(s *SessionLookup) []*string { return []*string{&s.Upstream} },
		func(h *Handler, s *SessionLookup) { h.SessionLookup = s }),
	"max_request_body":     sizeOption(func(h *Handler) *int64 { return &h.MaxRequestBody }),
	"max_response_body":    sizeOption(func(h *Handler) *int64 { return &h.MaxResponseBody }),
	"request_body_timeout": durationOption(func(h *Handler) *caddy.Duration { return &h.RequestBodyTimeout }),
}

var policyOptions = map[string]option[PolicyConfig]{
	"paths":  appendOption(func(p *PolicyConfig) *[]string { return &p.Paths }),
	"bundle": appendOption(func(p *PolicyConfig) *[]string { return &p.Bundles }),
	"remote": subBlock("remote bundle", remoteOptions, func(r *RemoteBundle) []*string { return []*string{&r.URL, &r.Resource} },
		func(p *PolicyConfig, r *RemoteBundle) { p.Remote = r }),
	"query":        stringOption(func(p *PolicyConfig) *string { return &p.Query }),
	"timeout":      durationOption(func(p *PolicyConfig) *caddy.Duration { return &p.Timeout }),
	"error_status": intOption(func(p *PolicyConfig) *int { return &p.ErrorStatus }),
	"dry_run":      flagOption(func(p *PolicyConfig) *bool { return &p.DryRun }),

	"allow_network_builtins": flagOption(func(p *PolicyConfig) *bool { return &p.AllowNetworkBuiltins }),

	"decision_logs": subBlock("decision_logs", decisionLogOptions, func(c *DecisionLogConfig) []*string { return []*string{&c.URL} },
		func(p *PolicyConfig, c *DecisionLogConfig) { p.DecisionLogs = c }),
}

var decisionLogOptions = map[string]option[DecisionLogConfig]{
	"min_delay":         durationOption(func(c *DecisionLogConfig) *caddy.Duration { return &c.MinDelay }),
	"max_delay":         durationOption(func(c *DecisionLogConfig) *caddy.Duration { return &c.MaxDelay }),
	"buffer_size_limit": sizeOption(func(c *DecisionLogConfig) *int64 { return &c.BufferSizeLimit }),
	"header": argsOption(func(c *DecisionLogConfig, args []string) {
		if c.Headers == nil {
			c.Headers = map[string]string{}
		}
		c.Headers[args[0]] = strings.Join(args[1:], " ")
	}),
}

var remoteOptions = map[string]option[RemoteBundle]{
	"polling":         unmarshalPolling,
	"header":          unmarshalRemoteHeader,
	"public_key_file": stringOption(func(r *RemoteBundle) *string { return &r.PublicKeyFile }),
	"key_id":          stringOption(func(r *RemoteBundle) *string { return &r.KeyID }),
	"algorithm":       stringOption(func(r *RemoteBundle) *string { return &r.Algorithm }),
	"scope":           stringOption(func(r *RemoteBundle) *string { return &r.Scope }),
	"wait":            durationOption(func(r *RemoteBundle) *caddy.Duration { return &r.Wait }),
}

var auditOptions = map[string]option[AuditConfig]{
	"file": subBlock("audit file", auditFileOptions, func(f *AuditFile) []*string { return []*string{&f.Path} },
		func(a *AuditConfig, f *AuditFile) { a.File = f }),
	"customer_field": unmarshalCustomerField,
	"customer_key":   stringOption(func(a *AuditConfig) *string { return &a.CustomerKey }),
}

var auditFileOptions = map[string]option[AuditFile]{
	"fsync":         unmarshalFsync,
	"max_size":      sizeOption(func(f *AuditFile) *int64 { return &f.MaxSize }),
	"write_timeout": durationOption(func(f *AuditFile) *caddy.Duration { return &f.WriteTimeout }),
	"chain_key":     stringOption(func(f *AuditFile) *string { return &f.ChainKey }),
}

var identityOptions = map[string]option[Identity]{
	"jwt": subBlock("jwt", jwtOptions, noArgs, func(id *Identity, j *JWTIdentity) { id.JWT = j }),
	"principal_lookup": subBlock("principal_lookup", principalLookupOptions, func(p *PrincipalLookupIdentity) []*string { return []*string{&p.Upstream} },
		func(id *Identity, p *PrincipalLookupIdentity) { id.PrincipalLookup = p }),
}

var jwtOptions = map[string]option[JWTIdentity]{
	"issuer":             stringOption(func(j *JWTIdentity) *string { return &j.Issuer }),
	"audience":           appendOption(func(j *JWTIdentity) *[]string { return &j.Audiences }),
	"audiences":          appendOption(func(j *JWTIdentity) *[]string { return &j.Audiences }),
	"algorithms":         listOption(func(j *JWTIdentity) *[]string { return &j.Algorithms }),
	"required_claims":    listOption(func(j *JWTIdentity) *[]string { return &j.RequiredClaims }),
	"jwks_file":          stringOption(func(j *JWTIdentity) *string { return &j.JWKSFile }),
	"jwks_url":           stringOption(func(j *JWTIdentity) *string { return &j.JWKSURL }),
	"subject_claim":      stringOption(func(j *JWTIdentity) *string { return &j.SubjectClaim }),
	"associate_id_claim": stringOption(func(j *JWTIdentity) *string { return &j.AssociateIDClaim }),
	"tenant_claim":       stringOption(func(j *JWTIdentity) *string { return &j.TenantClaim }),
	"leeway":             durationOption(func(j *JWTIdentity) *caddy.Duration { return &j.Leeway }),
	"refresh":            durationOption(func(j *JWTIdentity) *caddy.Duration { return &j.Refresh }),
	"min_refresh":        durationOption(func(j *JWTIdentity) *caddy.Duration { return &j.MinRefresh }),
	"max_token_bytes":    intOption(func(j *JWTIdentity) *int { return &j.MaxTokenBytes }),
	"cache_ttl":          valueOption(func(j *JWTIdentity) *caddy.Duration { return &j.CacheTTL }, parseDurationOrOff, "a duration or off"),
	"cache_max_entries":  intOption(func(j *JWTIdentity) *int { return &j.CacheMaxEntries }),
}

var principalLookupOptions = map[string]option[PrincipalLookupIdentity]{
	"timeout":     durationOption(func(p *PrincipalLookupIdentity) *caddy.Duration { return &p.Timeout }),
	"ttl":         durationOption(func(p *PrincipalLookupIdentity) *caddy.Duration { return &p.TTL }),
	"max_entries": intOption(func(p *PrincipalLookupIdentity) *int { return &p.MaxEntries }),
}

var sessionLookupOptions = map[string]option[SessionLookup]{
	"timeout": durationOption(func(s *SessionLookup) *caddy.Duration { return &s.Timeout }),
}

// policyShorthand lets a policy option stand directly in the reset_guard
// block.
func policyShorthand(name string) option[Handler] {
	return func(h *Handler, d *caddyfile.Dispenser) error {
		return policyOptions[name](&h.Policy, d)
	}
}

func unmarshalPolicy(h *Handler, d *caddyfile.Dispenser) error {
	h.Policy.Paths = append(h.Policy.Paths, d.RemainingArgs()...)
	return block(d, &h.Policy, policyOptions, "policy")
}

// unmarshalPolling reads "polling <min> <max>"; their order and floor are
// Validate's.
func unmarshalPolling(r *RemoteBundle, d *caddyfile.Dispenser) error {
	var lo, hi string
	if !d.AllArgs(&lo, &hi) {
		return d.ArgErr()
	}
	minD, okMin := parseDuration(lo)
	maxD, okMax := parseDuration(hi)
	if !okMin || !okMax {
		return d.Errf("polling %s %s: want two durations", lo, hi)
	}
	r.MinDelay, r.MaxDelay = minD, maxD
	return nil
}

func unmarshalRemoteHeader(r *RemoteBundle, d *caddyfile.Dispenser) error {
	var k, v string
	if !d.AllArgs(&k, &v) {
		return d.ArgErr()
	}
	if r.Headers == nil {
		r.Headers = map[string]string{}
	}
	r.Headers[k] = v
	return nil
}

// unmarshalFsync reads "fsync always | interval [<duration>] | never". A
// duration belongs to interval only, so one after another word is a stray
// argument; whether the word is a mode is Validate's question.
func unmarshalFsync(f *AuditFile, d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1:
	case len(args) == 2 && args[0] == string(audit.FsyncInterval):
		v, ok := parseDuration(args[1])
		if !ok {
			return d.Errf("fsync interval %q: want a duration", args[1])
		}
		f.FsyncInterval = v
	default:
		return d.ArgErr()
	}
	f.Fsync = args[0]
	return nil
}

func unmarshalCustomerField(a *AuditConfig, d *caddyfile.Dispenser) error {
	var name, how string
	if !d.AllArgs(&name, &how) {
		return d.ArgErr()
	}
	if a.CustomerFields == nil {
		a.CustomerFields = map[string]string{}
	}
	a.CustomerFields[name] = how
	return nil
}

// subBlock reads an option that opens a block of its own: the option's
// arguments fill the fields args names, the block's options fill a new
// T, and set attaches it to the parent. An option seen twice replaces
// the earlier block, as a repeated JSON key does.
func subBlock[P, T any](what string, options map[string]option[T], args func(*T) []*string, set func(*P, *T)) option[P] {
	return func(parent *P, d *caddyfile.Dispenser) error {
		cfg := new(T)
		if !d.AllArgs(args(cfg)...) {
			return d.ArgErr()
		}
		if err := block(d, cfg, options, what); err != nil {
			return err
		}
		set(parent, cfg)
		return nil
	}
}

// noArgs is the args of a block option that takes no argument.
func noArgs[T any](*T) []*string { return nil }

// stringOption reads an option of exactly one argument.
func stringOption[T any](field func(*T) *string) option[T] {
	return func(cfg *T, d *caddyfile.Dispenser) error {
		if !d.AllArgs(field(cfg)) {
			return d.ArgErr()
		}
		return nil
	}
}

// argsOption reads an option of one or more arguments.
func argsOption[T any](set func(cfg *T, args []string)) option[T] {
	return func(cfg *T, d *caddyfile.Dispenser) error {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		set(cfg, args)
		return nil
	}
}

// listOption reads a list that a repeated option replaces.
func listOption[T any](field func(*T) *[]string) option[T] {
	return argsOption(func(cfg *T, args []string) { *field(cfg) = args })
}

// appendOption reads a list that a repeated option adds to.
func appendOption[T any](field func(*T) *[]string) option[T] {
	return argsOption(func(cfg *T, args []string) { *field(cfg) = append(*field(cfg), args...) })
}

// flagOption reads an option that takes no argument.
func flagOption[T any](field func(*T) *bool) option[T] {
	return func(cfg *T, d *caddyfile.Dispenser) error {
		if d.NextArg() {
			return d.ArgErr()
		}
		*field(cfg) = true
		return nil
	}
}

// valueOption reads an option of one argument that parse converts; want
// names what the argument should have been.
func valueOption[T, V any](field func(*T) *V, parse func(string) (V, bool), want string) option[T] {
	return func(cfg *T, d *caddyfile.Dispenser) error {
		opt := d.Val()
		var s string
		if !d.AllArgs(&s) {
			return d.ArgErr()
		}
		v, ok := parse(s)
		if !ok {
			return d.Errf("%s %q: want %s", opt, s, want)
		}
		*field(cfg) = v
		return nil
	}
}

func durationOption[T any](field func(*T) *caddy.Duration) option[T] {
	return valueOption(field, parseDuration, "a duration")
}

func sizeOption[T any](field func(*T) *int64) option[T] {
	return valueOption(field, parseSize, "a size such as 64KiB")
}

func intOption[T any](field func(*T) *int) option[T] {
	return valueOption(field, func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil
	}, "a whole number")
}

// parseDuration reads a duration as Caddy does (Go's units and d for
// days); a negative one is left for Validate to refuse.
func parseDuration(s string) (caddy.Duration, bool) {
	v, err := caddy.ParseDuration(s)
	return caddy.Duration(v), err == nil
}

// parseDurationOrOff reads a duration, or "off" as durationOff.
func parseDurationOrOff(s string) (caddy.Duration, bool) {
	if s == "off" {
		return durationOff, true
	}
	return parseDuration(s)
}

// parseSize reads a byte count such as 64KiB or 1MB. It takes a sign,
// which humanize does not, so that a negative size reaches Validate and
// is refused with the same message as in JSON. A count past int64 is not
// a size the config can hold at all.
func parseSize(s string) (int64, bool) {
	digits, negative := strings.CutPrefix(s, "-")
	n, err := humanize.ParseBytes(digits)
	if err != nil || n > math.MaxInt64 {
		return 0, false
	}
	if negative {
		return -int64(n), true
	}
	return int64(n), true
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
