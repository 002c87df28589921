// Package classify decides whether a request can reach SuperOffice's
// chat-session Reset, and reads what the guard needs to know about it
// before anything else runs: the route (REST, Agents, SOAP) from the
// normalised path, the tenant and install prefix, the session id from the
// path, the Agents body or the SOAP envelope, the envelope's ticket and
// method-override headers.
//
// It errs toward guarding: a request that might reach Reset is classified
// as a reset and refused when its details are not certain, never passed
// through. Every refusal it returns is a *refusal.Refusal with a reason
// from package refusal.
package classify

import (
	"strconv"
	"strings"
)

// Route names a way of reaching the backend's chat-session reset. Its
// values are published: they are resetguard.route in the audit record,
// input.route in the policy input and a metric label.
type Route string

// The guarded routes. None is every other request.
const (
	None   Route = ""
	REST   Route = "rest"
	Agents Route = "agents"
	// SOAP is the WCF endpoint {prefix}/Remote/Services88/Chat.svc;
	// whether a request on it is a reset depends on its SOAP action,
	// which InspectSOAP reads from the headers and the envelope.
	SOAP Route = "soap"
)

// Target is what classification learns from a request path.
type Target struct {
	Route Route
	// Tenant is the SuperOffice Online tenant segment ("Cust12345") in
	// front of /api, as the path spells it; "" for onsite prefixes.
	Tenant string
	// IDSegment is the REST route's {chatSessionId} segment, decoded.
	IDSegment string
	// Prefix is the normalised path before /api ("" or "/SuperOffice",
	// decoded, case kept), for calls to other backend routes under the
	// same installation and for the forwarded path.
	Prefix string
	// Version is the segment after /api ("v1") on the REST and Agents
	// routes, as the path spells it.
	Version string
	// soapPath is the whole normalised path of a SOAP target.
	soapPath string
	// Unclear marks a path with too many readings to try (longer than
	// any client's): guarded, and refused rather than decided.
	Unclear bool
}

// maxDecodeRounds bounds repeated percent-decoding: a double-encoded
// "%252F" must be seen as "/", as a decoding proxy in front of the backend
// might see it, while the loop still ends on hostile input.
const maxDecodeRounds = 4

// Path maps an escaped request path (as the proxy will send it) to a
// guarded route. It errs toward guarding: a path is guarded when any way
// the backend might read it (eachReading) ends in a reset route, whatever
// the prefix or spelling; the guard's own reading decides the target when
// it matches. A path too costly to read every way that names a reset
// route's words is guarded as Unclear, to be refused.
//
// Paths that contain no '%', no '\', no "reset" and no ".svc" in any
// case cannot normalise to a reset route and are answered without
// allocating, because every request through the gateway pays for this.
func Path(escapedPath string) Target {
	if !mightBeReset(escapedPath) {
		return Target{}
	}
	var t Target
	_, unclear := eachReading(escapedPath, func(segs []string) bool {
		t = match(segs)
		return t.Route != None
	})
	if unclear {
		return unclearTarget(escapedPath)
	}
	return t
}

// unclearTarget guards a path that could not be read every way: under the
// route its words suggest, to be refused.
func unclearTarget(escapedPath string) Target {
	f := foldName(decodings(escapedPath)[0])
	switch {
	case strings.Contains(f, "resetchatsession"):
		return Target{Route: Agents, Unclear: true}
	case strings.Contains(f, ".svc"):
		return Target{Route: SOAP, Unclear: true}
	default:
		return Target{Route: REST, Unclear: true}
	}
}

// match finds a reset route at the end of normalised segments.
func match(segs []string) Target {
	n := len(segs)
	// EqualFold, not ==: it folds Unicode look-alikes such as 'ſ' (U+017F)
	// to 's', as a case-insensitive .NET router may.
	eq := strings.EqualFold
	if n >= 5 && eq(segs[n-1], "reset") && eq(segs[n-3], "chatsession") && eq(segs[n-5], "api") {
		return Target{Route: REST, Tenant: tenantBefore(segs, n-5), IDSegment: segs[n-2],
			Prefix: prefixOf(segs, n-5), Version: segs[n-4]}
	}
	if n >= 5 && eq(segs[n-1], "resetchatsession") && eq(segs[n-2], "chat") && eq(segs[n-3], "agents") && eq(segs[n-5], "api") {
		return Target{Route: Agents, Tenant: tenantBefore(segs, n-5), Prefix: prefixOf(segs, n-5), Version: segs[n-4]}
	}
	// The SOAP endpoint: any segment naming the Chat service, also with
	// WCF path info after it (Chat.svc/basic), whose endpoint the backend
	// resolves after the .svc segment.
	for k, s := range segs {
		if isChatService(s) {
			base := k
			if k >= 2 && eq(segs[k-2], "remote") {
				base = k - 2
			}
			return Target{Route: SOAP, Tenant: tenantBefore(segs, base), Prefix: prefixOf(segs, base),
				soapPath: prefixOf(segs, len(segs))}
		}
	}
	return Target{}
}

// ForwardPath is the path an allowed request on this target is forwarded
// with: the normalised prefix and the route spelled canonically, with the
// decided session id on the REST route, so that the backend acts on what
// the guard decided rather than on its own reading of the client's
// spelling. The SOAP route keeps its normalised path, whose endpoint and
// path info the backend resolves. It is unescaped, as url.URL.Path.
func (t Target) ForwardPath(id int32) string {
	switch t.Route {
	case REST:
		return t.Prefix + "/api/" + t.Version + "/ChatSession/" + strconv.FormatInt(int64(id), 10) + "/Reset"
	case Agents:
		return t.Prefix + "/api/" + t.Version + "/Agents/Chat/ResetChatSession"
	default:
		return t.soapPath
	}
}

// isChatService reports whether a normalised path segment may name the
// Chat.svc file: exactly, or by an 8.3 short name (CHAT~1.SVC), which IIS
// can map onto the long name when short names are enabled on the volume.
func isChatService(seg string) bool {
	if strings.EqualFold(seg, "chat.svc") {
		return true
	}
	return len(seg) > 4 && strings.EqualFold(seg[len(seg)-4:], ".svc") && strings.Contains(seg, "~")
}

// tenantBefore returns the Online tenant segment just before the "api"
// segment at index api, or "".
func tenantBefore(segs []string, api int) string {
	if api == 0 {
		return ""
	}
	s := segs[api-1]
	if len(s) > 4 && strings.EqualFold(s[:4], "cust") {
		for i := 4; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return ""
			}
		}
		return "Cust" + s[4:]
	}
	return ""
}

// prefixOf is the install path in front of the segment at index api.
func prefixOf(segs []string, api int) string {
	if api == 0 {
		return ""
	}
	return "/" + strings.Join(segs[:api], "/")
}

// mightBeReset is Path's allocation-free filter: only a path with an
// escape, a backslash, a '(', "reset" or ".svc" can normalise to a reset
// route.
func mightBeReset(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', '\\', '(':
			// An escape, a separator IIS reads, or a cookieless segment
			// System.Web may cut out as text ("Re/(S(x))set").
			return true
		case 'r', 'R':
			if len(p)-i >= 5 && strings.EqualFold(p[i:i+5], "reset") {
				return true
			}
		case '.':
			if len(p)-i >= 4 && strings.EqualFold(p[i+1:i+4], "svc") {
				return true
			}
		}
	}
	return false
}

// isCookieless reports whether seg is an ASP.NET cookieless-state
// segment: one or more parenthesised runs of "L(value)" groups, L a
// letter, such as "(S(abc))", "(S(x)F(y))" (System.Web's own form) or
// "(A(x))(F(y))". Any letter counts, not only the upper-case ones
// System.Web uses, to err toward guarding.
func isCookieless(seg string) bool {
	if seg == "" {
		return false
	}
	for seg != "" {
		if seg[0] != '(' {
			return false
		}
		seg = seg[1:]
		groups := 0
		for seg != "" && seg[0] != ')' {
			if len(seg) < 3 || !isASCIILetter(seg[0]) || seg[1] != '(' {
				return false
			}
			end := strings.IndexByte(seg[2:], ')')
			if end < 0 {
				return false
			}
			seg = seg[2+end+1:]
			groups++
		}
		if groups == 0 || seg == "" {
			return false
		}
		seg = seg[1:]
	}
	return true
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// percentDecode decodes every valid %XX escape and keeps invalid ones as
// they are, unlike url.PathUnescape, which gives up on the whole path.
func percentDecode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		// IIS also decodes the non-standard %uXXXX form.
		if s[i] == '%' && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') &&
			isHex(s[i+2]) && isHex(s[i+3]) && isHex(s[i+4]) && isHex(s[i+5]) {
			r := rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5]))
			b.WriteRune(r)
			i += 5
			continue
		}
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
