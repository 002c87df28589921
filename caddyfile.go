package resetguard

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	caddy.RegisterModule(new(Handler))
	httpcaddyfile.RegisterHandlerDirective("reset_guard", parseCaddyfile)
	// Before reverse_proxy, and so after rewrite, uri and handle_path:
	// the guard sees the path exactly as the proxy will send it.
	httpcaddyfile.RegisterDirectiveOrder("reset_guard", httpcaddyfile.Before, "reverse_proxy")
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
//	    }
//	    schemes          <basic|soticket|bearer|xsrf...>
//	    realm            <realm>
//	    fingerprint_key  <key or {env.VAR}>
//	    input_headers    <header names...>
//	    audit {
//	        file <path> {
//	            fsync always | interval [<duration>] | never
//	            max_size <size>
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
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.Policy.Paths = append(h.Policy.Paths, d.RemainingArgs()...)
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "policy":
			h.Policy.Paths = append(h.Policy.Paths, d.RemainingArgs()...)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if err := h.unmarshalPolicyOption(d, d.Val()); err != nil {
					return err
				}
			}
		case "query", "dry_run":
			if err := h.unmarshalPolicyOption(d, opt); err != nil {
				return err
			}
		case "policy_timeout":
			if err := h.unmarshalPolicyOption(d, "timeout"); err != nil {
				return err
			}
		case "policy_error_status":
			if err := h.unmarshalPolicyOption(d, "error_status"); err != nil {
				return err
			}
		case "schemes":
			h.Schemes = d.RemainingArgs()
			if len(h.Schemes) == 0 {
				return d.ArgErr()
			}
		case "realm":
			if !d.AllArgs(&h.Realm) {
				return d.ArgErr()
			}
		case "fingerprint_key":
			if !d.AllArgs(&h.FingerprintKey) {
				return d.ArgErr()
			}
		case "name":
			if !d.AllArgs(&h.Name) {
				return d.ArgErr()
			}
		case "errors":
			if !d.AllArgs(&h.Errors) {
				return d.ArgErr()
			}
			if h.Errors != ErrorsSuperOffice && h.Errors != ErrorsHandleErrors {
				return d.Errf("errors %q: want %s or %s", h.Errors, ErrorsSuperOffice, ErrorsHandleErrors)
			}
		case "input_headers":
			h.InputHeaders = d.RemainingArgs()
			if len(h.InputHeaders) == 0 {
				return d.ArgErr()
			}
		case "audit":
			if err := h.unmarshalAudit(d); err != nil {
				return err
			}
		case "identity":
			if err := h.unmarshalIdentity(d); err != nil {
				return err
			}
		case "session_lookup":
			sl := &SessionLookup{}
			if !d.AllArgs(&sl.Upstream) {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				if d.Val() != "timeout" {
					return d.Errf("unrecognized session_lookup option %q", d.Val())
				}
				var v string
				if !d.AllArgs(&v) {
					return d.ArgErr()
				}
				dur, err := caddy.ParseDuration(v)
				if err != nil || dur <= 0 {
					return d.Errf("session_lookup timeout %q: want a positive duration", v)
				}
				sl.Timeout = caddy.Duration(dur)
			}
			h.SessionLookup = sl
		case "max_request_body", "max_response_body":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(s)
			if err != nil || n == 0 || n > 1<<30 {
				return d.Errf("%s: %q is not a size between 1B and 1GiB", opt, s)
			}
			if opt == "max_request_body" {
				h.MaxRequestBody = int64(n)
			} else {
				h.MaxResponseBody = int64(n)
			}
		case "request_body_timeout":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 || dur > 10*time.Minute {
				return d.Errf("request_body_timeout %q: want a duration in (0, 10m]", v)
			}
			h.RequestBodyTimeout = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized reset_guard option %q", opt)
		}
	}
	return nil
}

func (h *Handler) unmarshalPolicyOption(d *caddyfile.Dispenser, opt string) error {
	switch opt {
	case "paths":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		h.Policy.Paths = append(h.Policy.Paths, args...)
	case "bundle":
		args := d.RemainingArgs()
		if len(args) == 0 {
			return d.ArgErr()
		}
		h.Policy.Bundles = append(h.Policy.Bundles, args...)
	case "remote":
		return h.unmarshalRemote(d)
	case "query":
		if !d.AllArgs(&h.Policy.Query) {
			return d.ArgErr()
		}
	case "timeout":
		var s string
		if !d.AllArgs(&s) {
			return d.ArgErr()
		}
		dur, err := caddy.ParseDuration(s)
		if err != nil || dur <= 0 || dur > time.Minute {
			return d.Errf("policy timeout %q: want a duration in (0, 1m]", s)
		}
		h.Policy.Timeout = caddy.Duration(dur)
	case "error_status":
		var s string
		if !d.AllArgs(&s) {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 500 || n > 599 {
			return d.Errf("policy error_status %q: want a 5xx status", s)
		}
		h.Policy.ErrorStatus = n
	case "dry_run":
		if d.NextArg() {
			return d.ArgErr()
		}
		h.Policy.DryRun = true
	default:
		return d.Errf("unrecognized policy option %q", opt)
	}
	return nil
}

func (h *Handler) unmarshalRemote(d *caddyfile.Dispenser) error {
	r := &RemoteBundle{}
	if !d.AllArgs(&r.URL, &r.Resource) {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "polling":
			var lo, hi string
			if !d.AllArgs(&lo, &hi) {
				return d.ArgErr()
			}
			minD, err1 := caddy.ParseDuration(lo)
			maxD, err2 := caddy.ParseDuration(hi)
			if err1 != nil || err2 != nil || minD < time.Second || maxD < minD {
				return d.Errf("remote polling %s %s: want two durations, at least 1s, min <= max", lo, hi)
			}
			r.MinDelay, r.MaxDelay = caddy.Duration(minD), caddy.Duration(maxD)
		case "header":
			var k, v string
			if !d.AllArgs(&k, &v) {
				return d.ArgErr()
			}
			if r.Headers == nil {
				r.Headers = map[string]string{}
			}
			r.Headers[k] = v
		case "public_key_file", "key_id", "algorithm", "scope":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			switch opt {
			case "public_key_file":
				r.PublicKeyFile = v
			case "key_id":
				r.KeyID = v
			case "algorithm":
				r.Algorithm = v
			default:
				r.Scope = v
			}
		case "wait":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			w, err := caddy.ParseDuration(v)
			if err != nil || w < 0 {
				return d.Errf("remote wait %q: want a duration", v)
			}
			r.Wait = caddy.Duration(w)
		default:
			return d.Errf("unrecognized remote bundle option %q", opt)
		}
	}
	h.Policy.Remote = r
	return nil
}

func (h *Handler) unmarshalAudit(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	a := &AuditConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "file":
			f := &AuditFile{}
			if !d.AllArgs(&f.Path) {
				return d.ArgErr()
			}
			for n := d.Nesting(); d.NextBlock(n); {
				opt := d.Val()
				args := d.RemainingArgs()
				switch opt {
				case "fsync":
					if len(args) == 0 || len(args) > 2 {
						return d.ArgErr()
					}
					f.Fsync = args[0]
					switch {
					case args[0] == "interval" && len(args) == 2:
						dur, err := caddy.ParseDuration(args[1])
						if err != nil || dur <= 0 {
							return d.Errf("fsync interval %q: want a positive duration", args[1])
						}
						f.FsyncInterval = caddy.Duration(dur)
					case len(args) == 1 && (args[0] == "always" || args[0] == "interval" || args[0] == "never"):
					default:
						return d.Errf("fsync: want always, interval [<duration>] or never")
					}
				case "max_size":
					if len(args) != 1 {
						return d.ArgErr()
					}
					n, err := humanize.ParseBytes(args[0])
					if err != nil {
						return d.Errf("max_size %q: %v", args[0], err)
					}
					f.MaxSize = int64(n)
				case "chain_key":
					if len(args) != 1 {
						return d.ArgErr()
					}
					f.ChainKey = args[0]
				default:
					return d.Errf("unrecognized audit file option %q", opt)
				}
			}
			a.File = f
		case "customer_field":
			var name, how string
			if !d.AllArgs(&name, &how) {
				return d.ArgErr()
			}
			if a.CustomerFields == nil {
				a.CustomerFields = map[string]string{}
			}
			a.CustomerFields[name] = how
		case "customer_key":
			if !d.AllArgs(&a.CustomerKey) {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized audit option %q", d.Val())
		}
	}
	h.Audit = a
	return nil
}

func (h *Handler) unmarshalIdentity(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	id := &Identity{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "jwt":
			j := &JWTIdentity{}
			for n := d.Nesting(); d.NextBlock(n); {
				if err := unmarshalJWTOption(d, j); err != nil {
					return err
				}
			}
			id.JWT = j
		case "principal_lookup":
			p := &PrincipalLookupIdentity{}
			if !d.AllArgs(&p.Upstream) {
				return d.ArgErr()
			}
			for n := d.Nesting(); d.NextBlock(n); {
				opt := d.Val()
				var v string
				if !d.AllArgs(&v) {
					return d.ArgErr()
				}
				switch opt {
				case "timeout", "ttl":
					dur, err := caddy.ParseDuration(v)
					if err != nil || dur <= 0 {
						return d.Errf("principal_lookup %s %q: want a positive duration", opt, v)
					}
					if opt == "timeout" {
						p.Timeout = caddy.Duration(dur)
					} else {
						p.TTL = caddy.Duration(dur)
					}
				case "max_entries":
					n, err := strconv.Atoi(v)
					if err != nil || n < 1 {
						return d.Errf("principal_lookup max_entries %q: want a positive number", v)
					}
					p.MaxEntries = n
				default:
					return d.Errf("unrecognized principal_lookup option %q", opt)
				}
			}
			id.PrincipalLookup = p
		default:
			return d.Errf("unrecognized identity option %q", d.Val())
		}
	}
	h.Identity = id
	return nil
}

func unmarshalJWTOption(d *caddyfile.Dispenser, j *JWTIdentity) error {
	opt := d.Val()
	args := d.RemainingArgs()
	one := func(dst *string) error {
		if len(args) != 1 {
			return d.ArgErr()
		}
		*dst = args[0]
		return nil
	}
	dur := func(dst *caddy.Duration) error {
		if len(args) != 1 {
			return d.ArgErr()
		}
		v, err := caddy.ParseDuration(args[0])
		if err != nil || v < 0 {
			return d.Errf("jwt %s %q: want a duration", opt, args[0])
		}
		*dst = caddy.Duration(v)
		return nil
	}
	switch opt {
	case "issuer":
		return one(&j.Issuer)
	case "audience", "audiences":
		if len(args) == 0 {
			return d.ArgErr()
		}
		j.Audiences = append(j.Audiences, args...)
	case "algorithms":
		if len(args) == 0 {
			return d.ArgErr()
		}
		j.Algorithms = args
	case "required_claims":
		if len(args) == 0 {
			return d.ArgErr()
		}
		j.RequiredClaims = args
	case "jwks_file":
		return one(&j.JWKSFile)
	case "jwks_url":
		return one(&j.JWKSURL)
	case "subject_claim":
		return one(&j.SubjectClaim)
	case "associate_id_claim":
		return one(&j.AssociateIDClaim)
	case "tenant_claim":
		return one(&j.TenantClaim)
	case "leeway":
		return dur(&j.Leeway)
	case "refresh":
		return dur(&j.Refresh)
	case "min_refresh":
		return dur(&j.MinRefresh)
	case "max_token_bytes":
		if len(args) != 1 {
			return d.ArgErr()
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 64 {
			return d.Errf("jwt max_token_bytes %q: want a number >= 64", args[0])
		}
		j.MaxTokenBytes = n
	default:
		return d.Errf("unrecognized jwt option %q", opt)
	}
	return nil
}

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
