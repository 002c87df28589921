package policy

import (
	"encoding/json"
	"net/http"
	"net/textproto"

	"github.com/open-policy-agent/opa/v1/rego"
	"golang.org/x/net/http/httpguts"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// ReasonInvalid is the deny reason for an undefined, malformed or
// non-boolean policy result.
const ReasonInvalid = refusal.PolicyResultInvalid

// Decision is what the policy said.
type Decision struct {
	Allow bool
	// Reasons are shown to the client on a deny and recorded in the audit.
	Reasons []string
	// Status is the deny status (0: the guard's default, 403).
	Status int
	// Headers go on the deny response, or onto the upstream request on an
	// allow.
	Headers http.Header
}

func invalid() Decision { return Decision{Reasons: []string{ReasonInvalid}} }

func parseResultSet(rs rego.ResultSet) Decision {
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return invalid()
	}
	return ParseResult(rs[0].Expressions[0].Value)
}

// ParseResult turns a policy value into a Decision. Accepted are a boolean
// or an object {"allow": bool, "reasons": [string], "status": int,
// "headers": {name: string | [string]}} with no other keys; anything else
// is a deny with ReasonInvalid, because a policy whose author meant
// something the guard cannot read must not be guessed into an allow.
func ParseResult(v any) Decision {
	switch t := v.(type) {
	case bool:
		return Decision{Allow: t}
	case map[string]any:
		return parseObject(t)
	default:
		return invalid()
	}
}

func parseObject(m map[string]any) Decision {
	var d Decision
	allow, ok := m["allow"].(bool)
	if !ok {
		return invalid()
	}
	d.Allow = allow
	for k, v := range m {
		switch k {
		case "allow":
		case "reasons":
			list, ok := v.([]any)
			if !ok {
				return invalid()
			}
			for _, r := range list {
				s, ok := r.(string)
				if !ok {
					return invalid()
				}
				d.Reasons = append(d.Reasons, s)
			}
		case "status":
			n, ok := v.(json.Number)
			if !ok {
				return invalid()
			}
			s, err := n.Int64()
			if err != nil || s < 400 || s > 599 {
				return invalid()
			}
			d.Status = int(s)
		case "headers":
			h, ok := parseHeaders(v)
			if !ok {
				return invalid()
			}
			d.Headers = h
		default:
			return invalid()
		}
	}
	return d
}

func parseHeaders(v any) (http.Header, bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	h := make(http.Header, len(m))
	for name, val := range m {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, false
		}
		key := textproto.CanonicalMIMEHeaderKey(name)
		if _, dup := h[key]; dup {
			// "x-a" and "X-A" in one object: no order to merge them by.
			return nil, false
		}
		var vals []string
		switch t := val.(type) {
		case string:
			vals = []string{t}
		case []any:
			for _, x := range t {
				s, ok := x.(string)
				if !ok {
					return nil, false
				}
				vals = append(vals, s)
			}
		default:
			return nil, false
		}
		for _, s := range vals {
			if !httpguts.ValidHeaderFieldValue(s) {
				return nil, false
			}
		}
		h[key] = vals
	}
	return h, true
}
