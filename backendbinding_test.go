package resetguard

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The backend model's second half (the first is backendmodel_test.go):
// which session id model binding hands to the reset action, once routing
// has chosen it. Sources are listed at the top of backendmodel_test.go.

// ---- REST: POST {prefix}/api/v1/ChatSession/{chatSessionId}/Reset ----

// restOutcomes binds the REST action's int chatSessionId. It is a simple
// parameter, bound from the URI: Web API's value providers are the query
// string first, then the route data (DefaultServices), and the first that
// holds the key (OrdinalIgnoreCase) wins, even with a value that does not
// convert. Whether the route template constrains the id ({chatSessionId:int})
// is unknown, so both are answered: with the constraint a route value
// Int32.TryParse refuses matches no route at all.
func restOutcomes(routeValue, rawQuery string, eq func(a, b string) bool) []backendOutcome {
	raw, src := routeValue, srcRESTRoute
	if vals := queryValues(rawQuery, "chatSessionId", eq); len(vals) > 0 {
		// A repeated key is a list; ValueProviderResult converts its
		// first element.
		raw, src = vals[0], srcRESTQuery
	}
	// With {chatSessionId:int} a value Int32.TryParse refuses matches no
	// route: that interpretation resets nothing and adds no outcome; the
	// unconstrained one binds as below.
	return []backendOutcome{bindInt32(raw, src, convertInt32)}
}

// bindInt32 is the outcome of binding raw to the action's int id with
// convert: a value that does not convert, or is 0 or negative, resets no
// session.
func bindInt32(raw, src string, convert func(string) (int64, bool)) backendOutcome {
	v, ok := convert(raw)
	if !ok || v < 1 || v > math.MaxInt32 {
		return backendOutcome{Kind: resetNoSession, Source: src}
	}
	return backendOutcome{Kind: resetSession, ID: int32(v), Source: src}
}

// queryValues returns the values of key in a query string as Web API
// parses it (FormDataCollection: '&'-separated, names and values through
// WebUtility.UrlDecode), in order; keys compared with eq.
func queryValues(rawQuery, key string, eq func(a, b string) bool) []string {
	var vals []string
	for _, kv := range parseFormPairs(rawQuery) {
		if eq(kv[0], key) {
			vals = append(vals, kv[1])
		}
	}
	return vals
}

// parseFormPairs is FormUrlEncodedParser: pairs split at '&' (not ';'),
// name and value at the first '=', a name without '=' has the value "",
// both decoded by WebUtility.UrlDecode.
func parseFormPairs(s string) [][2]string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var pairs [][2]string
	for part := range strings.SplitSeq(s, "&") {
		name, value, _ := strings.Cut(part, "=")
		pairs = append(pairs, [2]string{webUtilityURLDecode(name), webUtilityURLDecode(value)})
	}
	return pairs
}

// webUtilityURLDecode is System.Net.WebUtility.UrlDecode: '+' is a space,
// %XX escapes are bytes decoded as UTF-8 (invalid sequences become
// U+FFFD), %uXXXX is not decoded.
func webUtilityURLDecode(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var out strings.Builder
	var pending []byte
	flush := func() {
		out.WriteString(strings.ToValidUTF8(string(pending), "\uFFFD"))
		pending = pending[:0]
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '+':
			pending = append(pending, ' ')
			i++
		case c == '%' && i+2 < len(s) && hexDigits(s[i+1:i+3]):
			pending = append(pending, hexValue(s[i+1])<<4|hexValue(s[i+2]))
			i += 3
		case c < utf8.RuneSelf:
			pending = append(pending, c)
			i++
		default:
			flush()
			r, n := utf8.DecodeRuneInString(s[i:])
			out.WriteRune(r)
			i += n
		}
	}
	flush()
	return out.String()
}

// ---- .NET number parsing ----

// parseInt32Integer is Int32.Parse(s, NumberStyles.Integer,
// CultureInfo.InvariantCulture), which XmlConvert.ToInt32, Json.NET's
// string-to-int and the int route constraint use: leading and trailing
// white space (U+0009–U+000D, U+0020), one leading '+' or '-', ASCII
// digits, and trailing NUL characters, which .NET's number parser
// ignores.
func parseInt32Integer(s string) (int64, bool) {
	i, n := 0, len(s)
	for i < n && isDotnetNumberWhite(s[i]) {
		i++
	}
	neg := false
	if i < n && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var v int64
	for i < n && s[i] >= '0' && s[i] <= '9' {
		v = v*10 + int64(s[i]-'0')
		if v > math.MaxInt32+1 {
			return 0, false
		}
		i++
	}
	if i == start {
		return 0, false
	}
	for i < n && isDotnetNumberWhite(s[i]) {
		i++
	}
	for i < n && s[i] == 0 {
		i++
	}
	if i != n {
		return 0, false
	}
	if neg {
		v = -v
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, false
	}
	return v, true
}

func isDotnetNumberWhite(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

// convertInt32 is Int32Converter.ConvertFrom, as ValueProviderResult
// calls it for route, query and form values: white space only is no
// value; otherwise String.Trim(), then '#', "0x", "0X", "&h" or "&H"
// introduce hexadecimal (Convert.ToInt32(s, 16), whose 32 bits wrap to
// negative), else Int32.Parse with NumberStyles.Integer.
func convertInt32(s string) (int64, bool) {
	t := strings.TrimFunc(s, unicode.IsSpace)
	switch {
	case t == "":
		return 0, false
	case t[0] == '#':
		return hexInt32(t[1:])
	case strings.HasPrefix(t, "0x"), strings.HasPrefix(t, "0X"), strings.HasPrefix(t, "&h"), strings.HasPrefix(t, "&H"):
		return hexInt32(t[2:])
	}
	return parseInt32Integer(t)
}

// hexInt32 is Convert.ToInt32(s, 16): an optional "0x" prefix, then 1 to
// 8 hex digits, read as uint32 and reinterpreted as int32.
func hexInt32(s string) (int64, bool) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s = s[2:]
	}
	if s == "" || !hexDigits(s) {
		return 0, false
	}
	s = strings.TrimLeft(s, "0")
	if len(s) > 8 {
		return 0, false
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		v = v<<4 | uint32(hexValue(s[i]))
	}
	return int64(int32(v)), true
}

// ---- Agents: POST {prefix}/api/v1/Agents/Chat/ResetChatSession ----

// agentsOutcomes binds the Agents action's request object, whose
// ChatSessionId is the id. By default a complex parameter is read from
// the body by the formatter the Content-Type selects (Json.NET,
// DataContractSerializer or the jQuery form formatter). Two more
// readings stand in for what SuperOffice's controller may do instead
// (agentsFormPrefixed, and a request bound from the URI).
func agentsOutcomes(contentType string, body []byte, rawQuery string, eq func(a, b string) bool) []backendOutcome {
	mediaType, charset := parseContentType(contentType)
	var out []backendOutcome
	switch mediaType {
	case "application/json", "text/json":
		out = append(out, jsonNetOutcome(decodeCharset(body, charset), eq))
	case "application/xml", "text/xml":
		out = append(out, dataContractOutcomes(decodeCharset(body, charset))...)
	case "application/x-www-form-urlencoded":
		out = append(out, jqueryFormOutcome(string(body), eq))
		out = append(out, agentsFormPrefixed(string(body), eq)...)
	default:
		// No formatter reads this media type: 415, unless the body is
		// empty, which binds a null request.
		if len(body) == 0 {
			out = append(out, backendOutcome{Kind: resetNoSession, Source: srcAgentsBody})
		}
	}
	// If the request type were bound from the URI ([FromUri]), the query
	// string would name its ChatSessionId, bare or behind the parameter's
	// name (request.ChatSessionId).
	for _, kv := range parseFormPairs(rawQuery) {
		if _, ok := idKey(kv[0], eq, true); ok {
			out = append(out, bindInt32(kv[1], srcAgentsQuery, convertInt32))
		}
	}
	return out
}

// parseContentType returns the lower-cased media type and charset of a
// Content-Type, leniently: .NET reads "application/json; charset" where
// mime.ParseMediaType gives up.
func parseContentType(ct string) (mediaType, charset string) {
	if mt, params, err := mime.ParseMediaType(ct); err == nil {
		return mt, strings.ToLower(params["charset"])
	}
	mt, rest, _ := strings.Cut(ct, ";")
	for p := range strings.SplitSeq(rest, ";") {
		if k, v, ok := strings.Cut(p, "="); ok && asciiEqualFold(strings.TrimSpace(k), "charset") {
			charset = strings.ToLower(strings.Trim(strings.TrimSpace(v), `"`))
		}
	}
	return strings.ToLower(strings.TrimSpace(mt)), charset
}

// decodeCharset reads body in the encodings the JSON and XML formatters
// support: UTF-16 (little-endian, .NET's "utf-16") when the charset names
// it, UTF-8 otherwise.
func decodeCharset(body []byte, charset string) string {
	if charset != "utf-16" && charset != "utf-16le" && charset != "unicode" {
		return string(body)
	}
	b := bytes.TrimPrefix(body, []byte{0xff, 0xfe})
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u))
}

// jsonNetOutcome is Json.NET deserialising the request object with the
// formatter's error handler, which marks every error handled: a value
// that does not convert is skipped and reading goes on, so of repeated
// ChatSessionId keys (matched OrdinalIgnoreCase) the last that converts
// wins. Json.NET is lenient where encoding/json is strict (comments,
// single quotes, octal and hex numbers, trailing commas) and its reading
// of a fraction into an int has changed between versions: whatever this
// strict reading cannot follow is resetUnknowable.
func jsonNetOutcome(body string, eq func(a, b string) bool) backendOutcome {
	unknowable := backendOutcome{Kind: resetUnknowable, Source: srcJSON}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return unknowable
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		// Not an object: an error, handled; the request stays null.
		return backendOutcome{Kind: resetNoSession, Source: srcJSON}
	}
	got := backendOutcome{Kind: resetNoSession, Source: srcJSON}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return unknowable
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return unknowable
		}
		if !eq(key, "ChatSessionId") {
			continue
		}
		switch v := jsonValue(raw); {
		case v.unknowable:
			return unknowable
		case v.ok:
			got = bindInt32(v.text, srcJSON, parseInt32Integer)
			if got.Kind != resetSession {
				// 0 or negative: an int, assigned.
				got = backendOutcome{Kind: resetNoSession, Source: srcJSON}
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return unknowable
	}
	return got
}

// jsonIDValue is how Json.NET reads one JSON value into an int property.
type jsonIDValue struct {
	// text converts with parseInt32Integer when ok.
	text string
	ok   bool
	// unknowable: a fraction or exponent (rounded by some Json.NET
	// versions, refused by others) or a structure (whose error recovery
	// is not modelled).
	unknowable bool
}

func jsonValue(raw json.RawMessage) jsonIDValue {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) == 0:
		return jsonIDValue{unknowable: true}
	case t[0] == '"':
		var s string
		if json.Unmarshal(t, &s) != nil {
			return jsonIDValue{unknowable: true}
		}
		// ReadAsInt32 on a string: int.TryParse(Integer, invariant); ""
		// is null, an error.
		if _, ok := parseInt32Integer(s); !ok {
			return jsonIDValue{}
		}
		return jsonIDValue{text: s, ok: true}
	case t[0] == '-' || t[0] >= '0' && t[0] <= '9':
		if bytes.ContainsAny(t, ".eE") {
			return jsonIDValue{unknowable: true}
		}
		if _, ok := parseInt32Integer(string(t)); !ok {
			return jsonIDValue{} // overflow: an error, skipped
		}
		return jsonIDValue{text: string(t), ok: true}
	case t[0] == '{' || t[0] == '[':
		return jsonIDValue{unknowable: true}
	default:
		return jsonIDValue{} // null, true, false: an error, skipped
	}
}

// dataContractOutcomes is the XML formatter's DataContractSerializer:
// the request's members are the root element's children, matched by
// exact (ordinal, case-sensitive) local name; the namespace is not
// checked here, erring toward binding. Whether a repeated ChatSessionId
// keeps the first (DataContractSerializer skips an unexpected element)
// or the last (XmlSerializer) is left open: every one is an outcome. A
// document that does not parse, or has a DTD, binds a null request.
func dataContractOutcomes(body string) []backendOutcome {
	dec := xml.NewDecoder(strings.NewReader(body))
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	none := []backendOutcome{{Kind: resetNoSession, Source: srcXML}}
	var out []backendOutcome
	depth := 0
	var text *strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return none
		}
		switch t := tok.(type) {
		case xml.Directive:
			return none
		case xml.StartElement:
			depth++
			if text != nil {
				// Markup inside the id: XmlConvert fails.
				return none
			}
			if depth == 2 && t.Name.Local == "ChatSessionId" {
				text = &strings.Builder{}
			}
		case xml.EndElement:
			if depth == 2 && text != nil {
				s := strings.Trim(text.String(), " \t\r\n")
				out = append(out, bindInt32(s, srcXML, parseInt32Integer))
				text = nil
			}
			depth--
		case xml.CharData:
			if text != nil {
				text.Write(t)
			}
		}
	}
	if len(out) == 0 {
		return none
	}
	return out
}

// jqueryFormOutcome is JQueryMvcFormUrlEncodedFormatter: the form's keys
// are normalised from jQuery to MVC syntax (x[] → x, x[f] → x.f; a '['
// without ']' throws, and the request is null), then bound with the
// model name "", so only a key that is ChatSessionId after normalising
// binds; a repeated one converts its first value.
func jqueryFormOutcome(body string, eq func(a, b string) bool) backendOutcome {
	var first *[2]string
	var rawKey string
	for _, kv := range parseFormPairs(body) {
		key, ok := normalizeJQueryToMvc(kv[0])
		if !ok {
			return backendOutcome{Kind: resetNoSession, Source: srcForm}
		}
		if first == nil && eq(key, "ChatSessionId") {
			first, rawKey = &kv, kv[0]
		}
	}
	if first == nil {
		return backendOutcome{Kind: resetNoSession, Source: srcForm}
	}
	src := srcForm
	if !eq(rawKey, "ChatSessionId") {
		src = srcFormJQuery
	}
	return bindInt32(first[1], src, convertInt32)
}

// normalizeJQueryToMvc is FormDataCollectionExtensions.NormalizeJQueryToMvc;
// ok is false where it throws (a '[' without ']').
func normalizeJQueryToMvc(key string) (string, bool) {
	if !strings.Contains(key, "[") {
		return key, true
	}
	var b strings.Builder
	i := 0
	for {
		open := strings.IndexByte(key[i:], '[')
		if open < 0 {
			b.WriteString(key[i:])
			break
		}
		open += i
		b.WriteString(key[i:open])
		closing := strings.IndexByte(key[open:], ']')
		if closing < 0 {
			return "", false
		}
		closing += open
		switch inner := key[open+1 : closing]; {
		case inner == "": // x[]: an array marker, removed
		case unicode.IsDigit(rune(inner[0])):
			b.WriteString(key[open : closing+1]) // x[0]: an index, kept
		default:
			b.WriteString("." + inner) // x[f] → x.f
		}
		i = closing + 1
		if i >= len(key) {
			break
		}
	}
	return b.String(), true
}

// agentsFormPrefixed answers for a request parameter bound by name (an
// MVC-style binder, or [ModelBinder]): then "request.ChatSessionId",
// "request[ChatSessionId]" and, with an empty name, "[ChatSessionId]"
// bind too. The default jQuery formatter binds with the model name ""
// and ignores them (FormDataCollectionExtensions.ReadAs); SuperOffice's
// binder configuration is not public, so they are possible outcomes.
func agentsFormPrefixed(body string, eq func(a, b string) bool) []backendOutcome {
	var out []backendOutcome
	seen := map[string]bool{}
	for _, kv := range parseFormPairs(body) {
		key, ok := normalizeJQueryToMvc(kv[0])
		if !ok {
			return nil
		}
		prefix, ok := idKey(key, eq, false)
		if !ok || seen[strings.ToLower(prefix)] {
			continue
		}
		// Each prefix is one possible parameter name; its first value
		// binds.
		seen[strings.ToLower(prefix)] = true
		out = append(out, bindInt32(kv[1], srcFormPrefixed, convertInt32))
	}
	return out
}

// idKey reports whether key names ChatSessionId behind a parameter name
// ("P.ChatSessionId", P a C# identifier or empty, as "[ChatSessionId]"
// normalises to ".ChatSessionId"), returning P; with bare, the name alone
// counts too (P is then "").
func idKey(key string, eq func(a, b string) bool, bare bool) (string, bool) {
	if bare && eq(key, "ChatSessionId") {
		return "", true
	}
	dot := strings.LastIndexByte(key, '.')
	if dot < 0 || !isIdentifier(key[:dot]) || !eq(key[dot+1:], "ChatSessionId") {
		return "", false
	}
	return key[:dot], true
}

// isIdentifier reports whether s is empty or a C# identifier (letters,
// digits, '_', not starting with a digit), which a parameter name is.
func isIdentifier(s string) bool {
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

// ---- SOAP: {prefix}/Remote/Services88/Chat.svc, ResetChatSession ----

// soapOutcomes is a minimal model of WCF's dispatch on Chat.svc: the
// call is ResetChatSession when any source of the action names it (the
// SOAPAction header, the SOAP 1.2 action media-type parameter, a
// WS-Addressing Action header, or the Body's first element, for a
// service that dispatches on it); its ids are the ChatSessionId elements
// in the Body, in any case. It does not model WCF's exact action strings,
// namespaces or parameter order: it errs toward a reset.
func soapOutcomes(h http.Header, body []byte) []backendOutcome {
	var claims []string
	for _, a := range h.Values("SOAPAction") {
		for part := range strings.SplitSeq(a, ",") {
			claims = append(claims, lastActionPart(part))
		}
	}
	if _, params, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil {
		claims = append(claims, lastActionPart(params["action"]))
	}
	env, err := readEnvelope(body)
	claims = append(claims, env.wsaAction, env.operation)
	reset := false
	for _, c := range claims {
		reset = reset || strings.EqualFold(c, "ResetChatSession")
	}
	switch {
	case err != nil && reset:
		return []backendOutcome{{Kind: resetUnknowable, Source: srcSOAP}}
	case err != nil, !reset:
		return nil
	case len(env.ids) == 0:
		return []backendOutcome{{Kind: resetNoSession, Source: srcSOAP}}
	}
	var out []backendOutcome
	for _, id := range env.ids {
		out = append(out, bindInt32(strings.Trim(id, " \t\r\n"), srcSOAP, parseInt32Integer))
	}
	return out
}

// lastActionPart is the operation an action URI names: its last '/',
// ':' or '#' part, without quotes.
func lastActionPart(a string) string {
	a = strings.TrimRight(strings.Trim(strings.TrimSpace(a), `"'`), "/ ")
	if i := strings.LastIndexAny(a, "/:#"); i >= 0 {
		a = a[i+1:]
	}
	return strings.TrimSpace(a)
}

// soapEnvelope is what the SOAP model reads of an envelope.
type soapEnvelope struct {
	wsaAction string // a Header's Action element
	operation string // the Body's first element's local name
	ids       []string
}

func readEnvelope(body []byte) (soapEnvelope, error) {
	var env soapEnvelope
	dec := xml.NewDecoder(bytes.NewReader(body))
	var stack []string
	var text *strings.Builder
	inAction := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return env, err
		}
		switch t := tok.(type) {
		case xml.Directive:
			return env, errors.New("DTD")
		case xml.StartElement:
			name := t.Name.Local
			switch {
			case len(stack) == 2 && strings.EqualFold(stack[1], "Header") && strings.EqualFold(name, "Action"):
				inAction, text = true, &strings.Builder{}
			case len(stack) == 2 && strings.EqualFold(stack[1], "Body") && env.operation == "":
				env.operation = name
			case len(stack) >= 2 && strings.EqualFold(stack[1], "Body") && strings.EqualFold(name, "ChatSessionId"):
				text = &strings.Builder{}
			}
			stack = append(stack, name)
		case xml.EndElement:
			if text != nil {
				if inAction {
					env.wsaAction, inAction = lastActionPart(text.String()), false
				} else {
					env.ids = append(env.ids, text.String())
				}
				text = nil
			}
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case xml.CharData:
			if text != nil {
				text.Write(t)
			}
		}
	}
	if len(stack) != 0 {
		return env, io.ErrUnexpectedEOF
	}
	return env, nil
}
