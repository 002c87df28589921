package resetguard

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strings"
	"unicode"
)

// Route names a way of reaching the backend's chat-session reset.
type Route string

// The guarded routes. RouteNone is every other request.
const (
	RouteNone   Route = ""
	RouteREST   Route = "rest"
	RouteAgents Route = "agents"
	// RouteSOAP is the WCF endpoint {prefix}/Remote/Services88/Chat.svc;
	// whether a request on it is a reset depends on its SOAP action,
	// which classifySOAP reads from the headers and the envelope.
	RouteSOAP Route = "soap"
)

// target is what classification learns from a request path.
type target struct {
	route Route
	// tenant is the SuperOffice Online tenant segment ("Cust12345") in
	// front of /api, as the path spells it; "" for onsite prefixes.
	tenant string
	// idSegment is the REST route's {chatSessionId} segment, decoded.
	idSegment string
	// prefix is the normalised path before /api ("" or "/superoffice"),
	// for calls to other backend routes under the same installation.
	prefix string
}

// maxDecodeRounds bounds repeated percent-decoding: a double-encoded
// "%252F" must be seen as "/", as a decoding proxy in front of the backend
// might see it, while the loop still ends on hostile input.
const maxDecodeRounds = 4

// classify maps an escaped request path (as the proxy will send it) to a
// guarded route. It errs toward guarding: anything whose normalised form
// ends in a reset route is guarded, whatever the prefix or spelling.
//
// Paths that contain no '%', no '\', no "reset" and no ".svc" in any
// case cannot normalise to a reset route and are answered without
// allocating.
func classify(escapedPath string) target {
	if !mightBeReset(escapedPath) {
		return target{}
	}
	segs := normalisePath(escapedPath)
	n := len(segs)
	// EqualFold, not ==: it folds Unicode look-alikes such as 'ſ' (U+017F)
	// to 's', as a case-insensitive .NET router may.
	eq := strings.EqualFold
	if n >= 5 && eq(segs[n-1], "reset") && eq(segs[n-3], "chatsession") && eq(segs[n-5], "api") {
		return target{route: RouteREST, tenant: tenantBefore(segs, n-5), idSegment: segs[n-2], prefix: prefixOf(segs, n-5)}
	}
	if n >= 5 && eq(segs[n-1], "resetchatsession") && eq(segs[n-2], "chat") && eq(segs[n-3], "agents") && eq(segs[n-5], "api") {
		return target{route: RouteAgents, tenant: tenantBefore(segs, n-5), prefix: prefixOf(segs, n-5)}
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
			return target{route: RouteSOAP, tenant: tenantBefore(segs, base), prefix: prefixOf(segs, base)}
		}
	}
	return target{}
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
	if len(s) > 4 && s[:4] == "cust" {
		for i := 4; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return ""
			}
		}
		return "Cust" + s[4:]
	}
	return ""
}

func prefixOf(segs []string, api int) string {
	if api == 0 {
		return ""
	}
	return "/" + strings.Join(segs[:api], "/")
}

func mightBeReset(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%', '\\':
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

// normalisePath returns the lower-cased, non-empty segments of p after
// percent-decoding (repeatedly), turning '\' into '/', dropping ';'
// parameters and trailing dots or spaces of segments (IIS ignores both),
// and resolving "." and "..". A trailing slash and duplicate slashes
// therefore vanish.
func normalisePath(p string) []string {
	for range maxDecodeRounds {
		if !strings.Contains(p, "%") {
			break
		}
		d := percentDecode(p)
		if d == p {
			break
		}
		p = d
	}
	p = strings.ReplaceAll(p, `\`, "/")
	raw := strings.Split(p, "/")
	segs := make([]string, 0, len(raw))
	for _, s := range raw {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		switch s {
		case "", ".":
			continue
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			continue
		}
		s = strings.TrimRightFunc(s, func(r rune) bool { return r == '.' || unicode.IsSpace(r) })
		if s == "" {
			continue
		}
		segs = append(segs, strings.ToLower(s))
	}
	return segs
}

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

// errBadSessionID is the reason for any chat-session id that is not a
// decimal int32 in 1..2147483647.
var errBadSessionID = errors.New("chat session id must be a decimal integer in 1..2147483647")

// parseSessionID accepts plain decimal digits (leading zeros allowed, as
// the backend's int32 binder allows them) with a value in int32's positive
// range. Signs, spaces and exponents are refused.
func parseSessionID(s string) (int32, error) {
	s = strings.TrimLeft(s, "0")
	if s == "" || len(s) > 10 {
		return 0, errBadSessionID
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errBadSessionID
		}
		v = v*10 + int64(c-'0')
	}
	if v < 1 || v > 1<<31-1 {
		return 0, errBadSessionID
	}
	return int32(v), nil
}

// errUnsupportedBody is returned for an Agents request body whose media
// type the guard cannot read: the id cannot be known, so it is refused.
var errUnsupportedBody = errors.New("request body media type not supported on the reset route")

// agentsIDField is the Agents API's parameter name; the backend's model
// binder matches it case-insensitively.
const agentsIDField = "chatsessionid"

// sessionIDFromBody reads the ChatSessionId of an Agents
// ResetChatSession request body: JSON, XML or form-encoded, chosen by
// contentType or, when that is absent, by the first non-space byte. A
// missing, duplicated or malformed id is an error: ambiguity is refused,
// never guessed.
func sessionIDFromBody(contentType string, body []byte) (int32, error) {
	kind := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", errUnsupportedBody, err)
		}
		switch {
		case mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json"):
			kind = "json"
		case mt == "application/xml" || mt == "text/xml" || strings.HasSuffix(mt, "+xml"):
			kind = "xml"
		case mt == "application/x-www-form-urlencoded":
			kind = "form"
		default:
			return 0, fmt.Errorf("%w: %s", errUnsupportedBody, mt)
		}
	} else {
		switch t := bytes.TrimLeft(body, " \t\r\n"); {
		case len(t) == 0:
			return 0, errors.New("empty request body: ChatSessionId missing")
		case t[0] == '{':
			kind = "json"
		case t[0] == '<':
			kind = "xml"
		default:
			kind = "form"
		}
	}
	var raw string
	var err error
	switch kind {
	case "json":
		raw, err = idFromJSON(body)
	case "xml":
		raw, err = idFromXML(body)
	default:
		raw, err = idFromForm(body)
	}
	if err != nil {
		return 0, err
	}
	return parseSessionID(strings.TrimSpace(raw))
}

func idFromJSON(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return "", fmt.Errorf("json body: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return "", errors.New("json body: want an object")
	}
	var id string
	found := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("json body: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", fmt.Errorf("json body: %w", err)
		}
		if !strings.EqualFold(key, agentsIDField) {
			continue
		}
		found++
		var n json.Number
		var s string
		switch {
		case json.Unmarshal(v, &n) == nil:
			id = n.String()
		case json.Unmarshal(v, &s) == nil:
			id = s
		default:
			return "", errBadSessionID
		}
	}
	if _, err := dec.Token(); err != nil {
		return "", fmt.Errorf("json body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("json body: data after the object")
	}
	return oneID(id, found)
}

func idFromXML(body []byte) (string, error) {
	dec := xml.NewDecoder(bytes.NewReader(body))
	var id strings.Builder
	found, depthInID := 0, 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("xml body: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return "", errXMLDTD
		case xml.StartElement:
			if depthInID > 0 {
				// An id element holding markup is not an id.
				return "", errBadSessionID
			}
			if strings.EqualFold(t.Name.Local, agentsIDField) {
				found++
				depthInID++
				id.Reset()
			}
		case xml.EndElement:
			if depthInID > 0 {
				depthInID--
			}
		case xml.CharData:
			if depthInID > 0 {
				id.Write(t)
			}
		}
	}
	return oneID(id.String(), found)
}

func idFromForm(body []byte) (string, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return "", fmt.Errorf("form body: %w", err)
	}
	var id string
	found := 0
	for k, vs := range vals {
		if strings.EqualFold(k, agentsIDField) {
			found += len(vs)
			if len(vs) > 0 {
				id = vs[0]
			}
		}
	}
	return oneID(id, found)
}

func oneID(id string, found int) (string, error) {
	switch found {
	case 0:
		return "", errors.New("ChatSessionId missing from the request body")
	case 1:
		return id, nil
	default:
		return "", errors.New("ChatSessionId given more than once")
	}
}
