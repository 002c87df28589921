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
//	    session_lookup   <upstream url> {
//	        timeout <duration>
//	    }
//	    max_request_body <size>
//	    max_response_body <size>
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
		case "input_headers":
			h.InputHeaders = d.RemainingArgs()
			if len(h.InputHeaders) == 0 {
				return d.ArgErr()
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

// Interface guard.
var _ caddyfile.Unmarshaler = (*Handler)(nil)
