package resetguard

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// An independent model of the backend, used as a test oracle: how IIS
// (http.sys), System.Web and ASP.NET Web API 2 route a request to one of
// SuperOffice's chat-session resets, and which session id model binding
// hands to the action. It is written from what those components do, not
// from internal/classify, so that the differential fuzz target
// (differential_fuzz_test.go) can catch the guard reading a request
// otherwise than the backend will.
//
// Where the backend's behaviour depends on configuration or on code we
// cannot see (SuperOffice's controllers, a proxy between the gateway and
// IIS), the model answers every interpretation it considers possible; a
// property must hold for each.
//
// Sources, read for this model (file paths in the public repositories):
//
//   - aspnet/AspNetWebStack (Web API 2):
//     src/System.Web.Http/Services/DefaultServices.cs (value providers:
//     QueryStringValueProviderFactory before RouteDataValueProviderFactory),
//     ValueProviders/Providers/CompositeValueProvider.cs (the first provider
//     holding the key wins), NameValuePairsValueProvider.cs (keys compared
//     with StringComparer.OrdinalIgnoreCase; a repeated key gives a list),
//     ValueProviders/ValueProviderResult.cs (whitespace-only is "no value";
//     a list converts its first element; conversion by TypeConverter),
//     src/Common/Routing/Constraints/IntRouteConstraint.cs (Int32.TryParse,
//     NumberStyles.Integer), ModelBinding/JQueryMVCFormUrlEncodedFormatter.cs
//     and FormDataCollectionExtensions.cs (form bodies bound with model name
//     "" after NormalizeJQueryToMvc: x[] → x, x[f] → x.f, a missing ']'
//     throws), ModelBinding/ModelBindingHelper.cs (CreatePropertyModelName),
//     System.Net.Http.Formatting/Formatting/Parsers/FormUrlEncodedParser.cs
//     and FormDataCollection.cs (query and form parsing: '&' only, names and
//     values through WebUtility.UrlDecode), BaseJsonMediaTypeFormatter.cs
//     (Json.NET errors are marked handled: deserialisation goes on).
//   - microsoft/referencesource (.NET Framework 4.8): System.Web/Routing/
//     ParsedRoute.cs and RouteParser.cs (literal segments compared
//     OrdinalIgnoreCase; trailing separators ignored; an empty segment does
//     not match), System.Web/VirtualPath.cs and Util/UrlPath.cs
//     (HttpRequest.Path is VirtualPath.Create: '\' → '/', "//" collapsed,
//     dot segments reduced), System.Web/Security/CookielessHelper.cs
//     (called from HttpContext.Init for every request: the LAST
//     "/(X(..)Y(..))/" span of ClientFilePath, made from RawUrl, whose
//     content is capital-letter groups, names the app path modifier) and
//     HttpResponse.RemoveAppPathModifier (its first occurrence after a '/'
//     is cut from the decoded FilePath), HttpRuntimeSection.cs
//     (requestPathInvalidCharacters, not modelled: see pathView.read),
//     System/compmod/system/componentmodel/basenumberconverter.cs and
//     Int32Converter.cs (Trim(), then "#", "0x", "0X", "&h", "&H" hex via
//     Convert.ToInt32(s, 16), else Int32.Parse(s, NumberStyles.Integer)),
//     System/net/System/Net/WebUtility.cs (UrlDecode: '+' → space, %XX as
//     UTF-8 bytes, no %uXXXX).
//   - Microsoft KB 820129, "Http.sys registry settings for IIS": the URL is
//     percent-decoded once, %uXXXX accepted (PercentUAllowed), a URL that is
//     not UTF-8 read as ANSI (EnableNonUTF8, FavorUTF8).
//   - dotnet/runtime#32247: on Windows (NLS) OrdinalIgnoreCase does not
//     equate U+017F 'ſ' with 's' (ICU does). The model answers both, so
//     matching is ASCII case-insensitive or Unicode simple case folding.
//
// Modelling choices the sources leave open are written where they are
// made; each errs toward more possible resets, never fewer.

// resetKind is what the backend does with a request in one
// interpretation.
type resetKind uint8

const (
	// notReset: the request reaches no reset operation.
	notReset resetKind = iota
	// resetNoSession: the request reaches a reset operation, but no valid
	// session id binds (binding failed, the id is 0 or negative, the body
	// could not be read): the backend resets nothing, yet the request is
	// one the guard must guard.
	resetNoSession
	// resetSession: the backend resets session ID.
	resetSession
	// resetUnknowable: the backend may reset a session whose id the model
	// cannot determine (a lenient parser may read what a strict one does
	// not): only a refusal is safe.
	resetUnknowable
)

func (k resetKind) String() string {
	return [...]string{"not a reset", "reset without a valid id", "reset", "reset of an unknowable id"}[k]
}

// Where the id came from: an outcome's Source. The fuzz target's
// knownUntilCanonicalForwarding list refers to them.
const (
	srcRESTRoute = "rest-route" // the REST route's {chatSessionId} segment
	// srcRESTQuery: the query string's chatSessionId, which Web API's
	// value providers consult before the route data.
	srcRESTQuery = "rest-query"
	srcJSON      = "agents-json" // Json.NET over an Agents body
	srcXML       = "agents-xml"  // DataContractSerializer over an Agents body
	// srcForm: a form body's key that is ChatSessionId as sent.
	srcForm = "agents-form"
	// srcFormJQuery: a form body's key that becomes ChatSessionId only
	// after NormalizeJQueryToMvc (ChatSessionId[], Chat[]SessionId).
	srcFormJQuery = "agents-form-jquery"
	// srcFormPrefixed: a form key P.ChatSessionId, P[ChatSessionId] or
	// [ChatSessionId]: bound only if the action's request parameter is
	// bound by name (see agentsFormPrefixed).
	srcFormPrefixed = "agents-form-prefixed"
	// srcAgentsQuery: the query string, if the request parameter is bound
	// from the URI.
	srcAgentsQuery = "agents-query"
	srcAgentsBody  = "agents-body" // no formatter, or none could read it
	srcSOAP        = "soap"
)

// backendOutcome is the backend's answer in one interpretation.
type backendOutcome struct {
	Kind resetKind
	// ID is the session reset, for resetSession.
	ID int32
	// Source is how the id bound (src* constants).
	Source string
	// View names the interpretation of the path (pathView.name), for
	// messages.
	View string
}

func (o backendOutcome) String() string {
	s := o.Kind.String()
	if o.Kind == resetSession {
		s += fmt.Sprintf(" %d", o.ID)
	}
	return fmt.Sprintf("%s (id from %s, path read as %s)", s, o.Source, o.View)
}

// backendRequest is a request as it reaches the backend.
type backendRequest struct {
	Method string
	// Path is the escaped path as sent on the wire (no query).
	Path string
	// RawQuery is the query string as sent, without '?'.
	RawQuery string
	Header   http.Header
	Body     []byte
}

// backendModel answers every outcome the backend may give req, without
// duplicates (two interpretations with the same kind, id and source count
// once). A request that is no reset in any interpretation gives only
// notReset outcomes.
func backendModel(req backendRequest) []backendOutcome {
	var outs []backendOutcome
	add := func(o backendOutcome) {
		for _, p := range outs {
			if p.Kind == o.Kind && p.ID == o.ID && p.Source == o.Source {
				return
			}
		}
		outs = append(outs, o)
	}
	post := reachesAsPost(req.Method, req.Header)
	seen := map[string]bool{}
	for _, v := range pathViews {
		path, query := v.read(req.Path, req.RawQuery)
		key := path + "?" + query
		if seen[key] {
			continue
		}
		seen[key] = true
		segs := routeSegments(path)
		for _, eq := range caseRules {
			r := matchRoute(segs, eq.equal)
			if r.route == routeNone || !post {
				continue
			}
			var got []backendOutcome
			switch r.route {
			case routeREST:
				got = restOutcomes(r.id, query, eq.equal)
			case routeAgents:
				got = agentsOutcomes(req.Header.Get("Content-Type"), req.Body, query, eq.equal)
			case routeSOAP:
				got = soapOutcomes(req.Header, req.Body)
			}
			for _, o := range got {
				o.View = v.name + "/" + eq.name
				add(o)
			}
		}
	}
	if len(outs) == 0 {
		outs = append(outs, backendOutcome{Kind: notReset})
	}
	return outs
}

// resets returns the outcomes that reach a reset operation.
func resets(outs []backendOutcome) []backendOutcome {
	var r []backendOutcome
	for _, o := range outs {
		if o.Kind != notReset {
			r = append(r, o)
		}
	}
	return r
}

// methodOverrideHeaders are the headers a framework may honour as the
// request's method. Web API 2 honours none by default; SuperOffice's
// handlers are unknown, so the model lets any of them make a POST.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// reachesAsPost reports whether the request may reach a POST action.
// HttpMethod equality in System.Net.Http is OrdinalIgnoreCase, so "post"
// selects a [HttpPost] action.
func reachesAsPost(method string, h http.Header) bool {
	if asciiEqualFold(method, http.MethodPost) {
		return true
	}
	for _, name := range methodOverrideHeaders {
		for _, v := range h.Values(name) {
			if asciiEqualFold(strings.TrimSpace(v), http.MethodPost) {
				return true
			}
		}
	}
	return false
}

// ---- the path, as IIS and System.Web give it to routing ----

// proxyMode is what may stand between the gateway and IIS.
type proxyMode uint8

const (
	// noProxy: IIS receives what the gateway sends.
	noProxy proxyMode = iota
	// decodingProxy forwards the path percent-decoded once more (IIS
	// then decodes it again).
	decodingProxy
	// normalisingProxy decodes once and resolves dot segments (as nginx
	// does with a URI in proxy_pass) before IIS decodes again.
	normalisingProxy
)

// pathView is one interpretation of the path's way to routing.
type pathView struct {
	name  string
	proxy proxyMode
	// collapse: empty segments ("//") are dropped before dot segments
	// are resolved. Whether http.sys does is not documented; without it,
	// ".../Reset//.." resolves to ".../Reset/".
	collapse bool
	// strip: trailing dots and spaces of segments are removed, as Win32
	// path normalisation does, after dot segments are resolved.
	strip bool
	// rawCookieless: System.Web finds the cookieless segment in RawUrl
	// (the URL as sent, if IIS gives it undecoded) and removes the
	// modifier it names from the decoded path; otherwise both are the
	// decoded path.
	rawCookieless bool
}

// pathViews are the interpretations the model answers for: each proxy
// mode, with and without "//" collapsing and trailing-dot stripping in
// http.sys, the cookieless segment found in the decoded or the raw URL.
var pathViews = func() []pathView {
	var vs []pathView
	for _, p := range []struct {
		mode proxyMode
		name string
	}{{noProxy, "iis"}, {decodingProxy, "decoding-proxy+iis"}, {normalisingProxy, "normalising-proxy+iis"}} {
		for _, collapse := range []bool{false, true} {
			for _, strip := range []bool{false, true} {
				for _, raw := range []bool{false, true} {
					name := p.name
					if collapse {
						name += ",collapse"
					}
					if strip {
						name += ",strip"
					}
					if raw {
						name += ",raw-cookieless"
					}
					vs = append(vs, pathView{name: name, proxy: p.mode, collapse: collapse, strip: strip, rawCookieless: raw})
				}
			}
		}
	}
	return vs
}()

// read returns the decoded, canonical path routing sees, and the query
// string Web API parses.
func (v pathView) read(path, rawQuery string) (string, string) {
	p := path
	if v.proxy != noProxy {
		p = string(percentDecodeBytes(p, false))
		// The proxy forwards the decoded path as is: a decoded '?' starts
		// the query IIS sees, a decoded '#' ends the URL.
		if i := strings.IndexByte(p, '#'); i >= 0 {
			p = p[:i]
		}
		if before, after, ok := strings.Cut(p, "?"); ok {
			p = before
			if rawQuery != "" {
				after += "?" + rawQuery
			}
			rawQuery = after
		}
		if v.proxy == normalisingProxy {
			p = resolveDotSegments(p, v.collapse, false)
		}
	}
	raw := p
	// http.sys: decode once (%XX and %uXXXX), then canonicalise: '\' is
	// '/', "." and ".." are resolved.
	p = httpSysDecode(p)
	p = strings.ReplaceAll(p, `\`, "/")
	p = resolveDotSegments(p, v.collapse, v.strip)
	// System.Web: HttpRequest.Path is VirtualPath.Create(path), which
	// turns '\' into '/', collapses "//" (UrlPath.FixVirtualPathSlashes)
	// and resolves dot segments again (UrlPath.ReduceVirtualPath).
	p = systemWebVirtualPath(p)
	// Then the cookieless-state segment (HttpContext.Init).
	if v.rawCookieless {
		p = removeAppPathModifier(p, cookielessModifier(systemWebVirtualPath(raw)))
	} else {
		p = removeAppPathModifier(p, cookielessModifier(p))
	}
	// ASP.NET 4 refuses a Path holding any of requestPathInvalidCharacters
	// (default "<>*%&:\?"); SuperOffice may clear that list, so the model
	// does not refuse: it errs toward a reset.
	return p, rawQuery
}

// systemWebVirtualPath is VirtualPath.Create on an absolute path: '\' to
// '/', "//" collapsed, "." and ".." resolved.
func systemWebVirtualPath(p string) string {
	return resolveDotSegments(strings.ReplaceAll(p, `\`, "/"), true, false)
}

// percentDecodeBytes decodes every valid %XX escape (and, with
// percentU, the non-standard %uXXXX form into UTF-8) and keeps any other
// '%' as it is.
func percentDecodeBytes(s string, percentU bool) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if percentU && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') &&
				hexDigits(s[i+2:i+6]) {
				var r rune
				for _, h := range []byte(s[i+2 : i+6]) {
					r = r<<4 | rune(hexValue(h))
				}
				b = utf8.AppendRune(b, r)
				i += 5
				continue
			}
			if i+2 < len(s) && hexDigits(s[i+1:i+3]) {
				b = append(b, hexValue(s[i+1])<<4|hexValue(s[i+2]))
				i += 2
				continue
			}
		}
		b = append(b, c)
	}
	return b
}

// httpSysDecode is http.sys's decoding of the path: once, %uXXXX
// included (PercentUAllowed); bytes that are not UTF-8 are read as the
// ANSI code page (EnableNonUTF8), approximated here by Latin-1.
func httpSysDecode(s string) string {
	b := percentDecodeBytes(s, true)
	if utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

func hexDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if hexValue(s[i]) == 0xff {
			return false
		}
	}
	return true
}

func hexValue(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// resolveDotSegments resolves "." and ".." segments of an absolute path
// (only segments that are exactly "." or "..": http.sys gives ".. " or
// "..;" no meaning), optionally dropping empty segments first, and then,
// with strip, removes trailing dots and spaces of each segment.
func resolveDotSegments(p string, collapse, strip bool) string {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	out := make([]string, 0, len(parts))
	for _, s := range parts {
		switch {
		case s == ".":
		case s == "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case s == "" && collapse:
		default:
			out = append(out, s)
		}
	}
	if strip {
		kept := out[:0]
		for _, s := range out {
			s = strings.TrimRight(s, ". ")
			if s == "" && collapse {
				continue
			}
			kept = append(kept, s)
		}
		out = kept
	}
	return "/" + strings.Join(out, "/")
}

// cookielessModifier is what System.Web's
// CookielessHelperClass.RemoveCookielessValuesFromPath finds in a path:
// the last "/(" … ")/" span, when its content is one or more groups of a
// capital letter and a parenthesised value without '/' ("S(x)",
// "S(x)A(y)"). Only that one span is looked at. It returns the app path
// modifier "(" + content + ")", or "".
func cookielessModifier(path string) string {
	if !strings.Contains(path, "(") {
		return ""
	}
	end := strings.LastIndex(path, ")/")
	if end <= 2 {
		return ""
	}
	start := strings.LastIndex(path[:end], "/(")
	if start < 0 || !validCookielessHeader(path[start+2:end]) {
		return ""
	}
	return path[start+1 : end+1]
}

// removeAppPathModifier is HttpResponse.RemoveAppPathModifier, which
// RemoveCookielessValuesFromPath applies to the request's FilePath: the
// first occurrence of the modifier, if a '/' precedes it, is cut out
// with that '/'.
func removeAppPathModifier(path, modifier string) string {
	if modifier == "" {
		return path
	}
	pos := strings.Index(path, modifier)
	if pos <= 0 || path[pos-1] != '/' {
		return path
	}
	return path[:pos-1] + path[pos+len(modifier):]
}

// validCookielessHeader is CookielessHelperClass.IsValidHeader, line
// for line: groups "X(value)", X in 'A'..'Z', value without '/', filling
// h exactly.
func validCookielessHeader(h string) bool {
	if len(h) < 3 {
		return false
	}
	i := 0
	for i <= len(h)-3 {
		if h[i] < 'A' || h[i] > 'Z' || h[i+1] != '(' {
			return false
		}
		i += 2
		found := false
		for ; i < len(h); i++ {
			if h[i] == ')' {
				i++
				found = true
				break
			}
			if h[i] == '/' {
				return false
			}
		}
		if !found {
			return false
		}
	}
	return i >= len(h)
}

// routeSegments splits a canonical path into segments for routing:
// trailing empty segments (a trailing '/') are separators System.Web's
// router ignores.
func routeSegments(path string) []string {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for len(segs) > 0 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	return segs
}

// caseRule is one reading of OrdinalIgnoreCase.
type caseRule struct {
	name  string
	equal func(a, b string) bool
}

// caseRules: Windows NLS (ASCII letters only: dotnet/runtime#32247) and
// Unicode simple case folding (ſ is s, K is k), in case the comparison
// folds.
var caseRules = []caseRule{{"nls", asciiEqualFold}, {"fold", strings.EqualFold}}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

type routeName uint8

const (
	routeNone routeName = iota
	routeREST
	routeAgents
	routeSOAP
)

type routeMatch struct {
	route routeName
	// id is the REST route's {chatSessionId} value.
	id string
}

// matchRoute finds a reset route at the end of segs, behind any prefix
// (an install path or an Online tenant is the application path in front
// of the routes). Every segment of the route must be non-empty: an empty
// one matches no literal and no parameter without a default.
func matchRoute(segs []string, eq func(a, b string) bool) routeMatch {
	n := len(segs)
	if n >= 5 && eq(segs[n-5], "api") && eq(segs[n-4], "v1") {
		switch {
		case eq(segs[n-3], "ChatSession") && eq(segs[n-1], "Reset") && segs[n-2] != "":
			return routeMatch{route: routeREST, id: segs[n-2]}
		case eq(segs[n-3], "Agents") && eq(segs[n-2], "Chat") && eq(segs[n-1], "ResetChatSession"):
			return routeMatch{route: routeAgents}
		}
	}
	// A WCF service is the file Chat.svc (IIS maps files
	// case-insensitively); segments after it are WCF path info.
	if slices.ContainsFunc(segs, func(s string) bool { return eq(s, "Chat.svc") }) {
		return routeMatch{route: routeSOAP}
	}
	return routeMatch{}
}

// summary is a request's outcomes as a sorted set of short words: the id
// reset, "noid" (resetNoSession), "unknowable", or "none" when no
// interpretation reaches a reset.
func summary(outs []backendOutcome) []string {
	var s []string
	for _, o := range outs {
		w := map[resetKind]string{notReset: "none", resetNoSession: "noid", resetUnknowable: "unknowable"}[o.Kind]
		if o.Kind == resetSession {
			w = fmt.Sprint(o.ID)
		}
		if !slices.Contains(s, w) {
			s = append(s, w)
		}
	}
	slices.Sort(s)
	return s
}

// backendModelCase is one request and the outcomes the backend may give
// it.
type backendModelCase struct {
	name        string
	method      string // "": POST
	path        string
	query       string
	header      map[string]string
	body        string
	want        []string // summary()
	wantSources []string // sources that must be among the outcomes
}

// TestBackendModelPaths: the known spellings of the REST route, as
// http.sys and System.Web read them.
func TestBackendModelPaths(t *testing.T) {
	runBackendModelCases(t, []backendModelCase{
		{name: "plain", path: "/api/v1/ChatSession/427/Reset", want: []string{"427"}, wantSources: []string{srcRESTRoute}},
		{name: "case-insensitive", path: "/API/V1/chatsession/427/RESET", want: []string{"427"}},
		{name: "install prefix", path: "/SuperOffice/api/v1/ChatSession/427/Reset", want: []string{"427"}},
		{name: "online tenant", path: "/Cust12345/api/v1/ChatSession/427/Reset", want: []string{"427"}},
		{name: "trailing slash", path: "/api/v1/ChatSession/427/Reset/", want: []string{"427"}},
		{name: "not a POST", method: "GET", path: "/api/v1/ChatSession/427/Reset", want: []string{"none"}},
		{name: "lower-case post", method: "post", path: "/api/v1/ChatSession/427/Reset", want: []string{"427"}},
		{name: "method override", method: "GET", path: "/api/v1/ChatSession/427/Reset",
			header: map[string]string{"X-HTTP-Method-Override": "POST"}, want: []string{"427"}},
		{name: "another ChatSession route", path: "/api/v1/ChatSession/427/Pickup", want: []string{"none"}},
		{name: "other version", path: "/api/v2/ChatSession/427/Reset", want: []string{"none"}},
		{name: "percent-encoded letters", path: "/api/v1/ChatSession/427/Re%73et", want: []string{"427"}},
		{name: "encoded slash", path: "/api/v1/ChatSession%2F427%2FReset", want: []string{"427"}},
		// One decoding leaves "Re%73et": only a decoding proxy makes it Reset.
		{name: "double-encoded", path: "/api/v1/ChatSession/427/Re%2573et", want: []string{"427"}},
		{name: "%u escape after a decoding proxy", path: "/api/v1/ChatSession/427/Re%25u0073et", want: []string{"427"}},
		{name: "encoded backslashes", path: "/api%5Cv1%5CChatSession%5C427%5CReset", want: []string{"427"}},
		{name: "dot segments", path: "/x/../api/./v1/ChatSession/427/Reset", want: []string{"427"}},
		{name: "dot segment after Reset", path: "/api/v1/ChatSession/427/Reset/x/..", want: []string{"427"}},
		{name: "dot-dot removes Reset", path: "/api/v1/ChatSession/427/Reset/..", want: []string{"none"}},
		// "..;" is no dot segment to http.sys: the ".." after it removes it.
		{name: "dot-dot-semicolon is a plain segment", path: "/api/v1/ChatSession/427/Reset/..;/..", want: []string{"427"}},
		{name: "encoded dots decode once", path: "/api/v1/ChatSession/427/Reset/%252E%252E/..", want: []string{"427"}},
		{name: "empty segment before dot-dot", path: "/api/v1/ChatSession/427/Reset//..", want: []string{"427"}},
		{name: "double slash inside", path: "/api//v1/ChatSession/427/Reset", want: []string{"427"}},
		{name: "trailing dot on Reset", path: "/api/v1/ChatSession/427/Reset.", want: []string{"427"}},
		{name: "trailing space on Reset", path: "/api/v1/ChatSession/427/Reset%20", want: []string{"427"}},
		// Without stripping, "427." is a route value Int32 refuses.
		{name: "trailing dot on the id", path: "/api/v1/ChatSession/427./Reset", want: []string{"427", "noid"}},
		{name: "long s matches under case folding", path: "/api/v1/ChatSe%C5%BFsion/427/Reset", want: []string{"427"}},
		{name: "dotless i matches under neither rule", path: "/api/v1/ChatSess%C4%B1on/427/Reset", want: []string{"none"}},
		{name: "cookieless segment before Reset", path: "/api/v1/ChatSession/427/(S(x))/Reset", want: []string{"427"}},
		{name: "cookieless segment in front", path: "/(A(a))/api/v1/ChatSession/427/Reset", want: []string{"427"}},
		{name: "cookieless groups in one segment", path: "/api/v1/ChatSession/427/(S(x)F(y))/Reset", want: []string{"427"}},
		{name: "cookieless letter must be a capital", path: "/api/v1/ChatSession/427/(s(x))/Reset", want: []string{"none"}},
		// Only the last cookieless segment is removed.
		{name: "two cookieless segments", path: "/api/v1/ChatSession/427/(S(x))/(A(y))/Reset", want: []string{"none"}},
		// RawUrl names the modifier, the decoded path loses its first
		// occurrence: here the one an encoded slash put inside "Reset".
		{name: "cookieless modifier found raw, removed decoded", path: "/api/v1/ChatSession/427/Re%2F(S(x))set/(S(x))/%2E%2E", want: []string{"427"}},
		{name: "decoded question mark after a decoding proxy", path: "/api/v1/ChatSession/427/Reset%3Fx", want: []string{"427"}},
	})
}

// TestBackendModelRESTBinding: where the REST action's id comes from and
// how Int32Converter reads it.
func TestBackendModelRESTBinding(t *testing.T) {
	const path = "/api/v1/ChatSession/427/Reset"
	runBackendModelCases(t, []backendModelCase{
		{name: "leading zeros", path: "/api/v1/ChatSession/000427/Reset", want: []string{"427"}},
		{name: "zero", path: "/api/v1/ChatSession/0/Reset", want: []string{"noid"}},
		{name: "past int32", path: "/api/v1/ChatSession/2147483648/Reset", want: []string{"noid"}},
		{name: "int32 max", path: "/api/v1/ChatSession/2147483647/Reset", want: []string{"2147483647"}},
		{name: "plus sign", path: "/api/v1/ChatSession/+427/Reset", want: []string{"427"}},
		{name: "spaces around", path: "/api/v1/ChatSession/%20427%20/Reset", want: []string{"427"}},
		// Int32Converter reads hex; an int route constraint refuses it.
		{name: "hex", path: "/api/v1/ChatSession/0x1AB/Reset", want: []string{"427"}},
		{name: "hash hex", path: "/api/v1/ChatSession/%231ab/Reset", want: []string{"427"}},
		{name: "negative hex", path: "/api/v1/ChatSession/0xFFFFFFFF/Reset", want: []string{"noid"}},
		{name: "not a number", path: "/api/v1/ChatSession/abc/Reset", want: []string{"noid"}},
		// The query string is consulted before the route data.
		{name: "query id wins", path: path, query: "chatSessionId=2", want: []string{"2"}, wantSources: []string{srcRESTQuery}},
		{name: "query id in any case", path: path, query: "CHATSESSIONID=2", want: []string{"2"}},
		{name: "query id encoded", path: path, query: "chatSession%49d=%32", want: []string{"2"}},
		{name: "first query value", path: path, query: "chatSessionId=2&chatsessionid=3", want: []string{"2"}},
		{name: "empty query value binds nothing", path: path, query: "chatSessionId=", want: []string{"noid"}},
		{name: "query id that does not convert", path: path, query: "chatSessionId=x", want: []string{"noid"}},
		{name: "other query names are ignored", path: path, query: "id=2&$select=x", want: []string{"427"}},
		{name: "semicolon separates nothing", path: path, query: "x=1;chatSessionId=2", want: []string{"427"}},
	})
}

// TestBackendModelAgents: the Agents body through Web API's formatters.
func TestBackendModelAgents(t *testing.T) {
	const path = "/api/v1/Agents/Chat/ResetChatSession"
	jsonCT := map[string]string{"Content-Type": "application/json"}
	xmlCT := map[string]string{"Content-Type": "application/xml"}
	formCT := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	runBackendModelCases(t, []backendModelCase{
		{name: "json", path: path, header: jsonCT, body: `{"ChatSessionId":831}`, want: []string{"831"}, wantSources: []string{srcJSON}},
		{name: "json with charset", path: path, header: map[string]string{"Content-Type": "text/json; charset=utf-8"}, body: `{"ChatSessionId":831}`, want: []string{"831"}},
		{name: "json in any case", path: path, header: jsonCT, body: `{"chatsessionid":831}`, want: []string{"831"}},
		{name: "json string id", path: path, header: jsonCT, body: `{"ChatSessionId":" 831 "}`, want: []string{"831"}},
		{name: "json last key wins", path: path, header: jsonCT, body: `{"ChatSessionId":1,"chatSessionId":2}`, want: []string{"2"}},
		{name: "json value that fails is skipped", path: path, header: jsonCT, body: `{"ChatSessionId":1,"ChatSessionId":null}`, want: []string{"1"}},
		{name: "json fraction", path: path, header: jsonCT, body: `{"ChatSessionId":831.0}`, want: []string{"unknowable"}},
		{name: "json Json.NET reads but Go does not", path: path, header: jsonCT, body: `{ChatSessionId:831}`, want: []string{"unknowable"}},
		{name: "json without the id", path: path, header: jsonCT, body: `{"Id":831}`, want: []string{"noid"}},
		{name: "json utf-16", path: path, header: map[string]string{"Content-Type": "application/json; charset=utf-16"},
			body: "{\x00\"\x00I\x00d\x00\"\x00:\x001\x00}\x00", want: []string{"noid"}},
		{name: "xml", path: path, header: xmlCT, body: `<ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, want: []string{"831"}},
		{name: "xml names are case-sensitive", path: path, header: xmlCT, body: `<R><chatsessionid>831</chatsessionid></R>`, want: []string{"noid"}},
		{name: "xml repeated id", path: path, header: xmlCT, body: `<R><ChatSessionId>1</ChatSessionId><ChatSessionId>2</ChatSessionId></R>`, want: []string{"1", "2"}},
		{name: "xml DTD", path: path, header: xmlCT, body: `<!DOCTYPE R><R><ChatSessionId>1</ChatSessionId></R>`, want: []string{"noid"}},
		{name: "form", path: path, header: formCT, body: `ChatSessionId=831`, want: []string{"831"}, wantSources: []string{srcForm}},
		{name: "form first value", path: path, header: formCT, body: `ChatSessionId=1&chatsessionid=2`, want: []string{"1"}},
		{name: "form array marker", path: path, header: formCT, body: `ChatSessionId[]=2&ChatSessionId=1`, want: []string{"2"}, wantSources: []string{srcFormJQuery}},
		{name: "form unclosed bracket", path: path, header: formCT, body: `ChatSessionId=1&x[=2`, want: []string{"noid"}},
		{name: "form prefixed name", path: path, header: formCT, body: `ChatSessionId=1&request.ChatSessionId=2`, want: []string{"1", "2"}, wantSources: []string{srcFormPrefixed}},
		{name: "form bracketed name", path: path, header: formCT, body: `request[ChatSessionId]=2`, want: []string{"2", "noid"}},
		{name: "form bracketed bare name", path: path, header: formCT, body: `[ChatSessionId]=2`, want: []string{"2", "noid"}},
		{name: "no content type", path: path, body: `{"ChatSessionId":831}`, want: []string{"none"}},
		{name: "no body", path: path, want: []string{"noid"}},
		{name: "query beside the body", path: path, query: "request.chatSessionId=2", header: jsonCT, body: `{"ChatSessionId":1}`, want: []string{"1", "2"}, wantSources: []string{srcAgentsQuery}},
		{name: "agents not a POST", method: "PUT", path: path, header: jsonCT, body: `{"ChatSessionId":1}`, want: []string{"none"}},
	})
}

// TestBackendModelSOAP: the minimal SOAP model.
func TestBackendModelSOAP(t *testing.T) {
	const path = "/Remote/Services88/Chat.svc"
	const ns = "http://www.superoffice.net/ws/crm/NetServer/Services88"
	env := func(body string) string {
		return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` + body + `</s:Body></s:Envelope>`
	}
	reset := `<ResetChatSession xmlns="` + ns + `"><ChatSessionId>427</ChatSessionId></ResetChatSession>`
	get := `<GetChatSessionEntity xmlns="` + ns + `"><ChatSessionEntityId>427</ChatSessionEntityId></GetChatSessionEntity>`
	runBackendModelCases(t, []backendModelCase{
		{name: "reset by action", path: path, header: map[string]string{"SOAPAction": `"` + ns + `/ResetChatSession"`}, body: env(reset), want: []string{"427"}},
		{name: "reset by body only", path: path, body: env(reset), want: []string{"427"}},
		{name: "another operation", path: path, header: map[string]string{"SOAPAction": `"` + ns + `/GetChatSessionEntity"`}, body: env(get), want: []string{"none"}},
		{name: "path info", path: "/SuperOffice/Remote/Services88/chat.svc/basic", body: env(reset), want: []string{"427"}},
		{name: "action without an id", path: path, header: map[string]string{"SOAPAction": "ResetChatSession"}, body: env(get), want: []string{"noid"}},
	})
}

func runBackendModelCases(t *testing.T, cases []backendModelCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			outs := backendModel(backendRequest{Method: method, Path: tc.path, RawQuery: tc.query, Header: h, Body: []byte(tc.body)})
			if got := summary(outs); !slices.Equal(got, tc.want) {
				t.Errorf("outcomes %v, want %v:\n%s", got, tc.want, describeOutcomes(outs))
			}
			for _, src := range tc.wantSources {
				if !slices.ContainsFunc(outs, func(o backendOutcome) bool { return o.Source == src && o.Kind != notReset }) {
					t.Errorf("no outcome from %s:\n%s", src, describeOutcomes(outs))
				}
			}
		})
	}
}

// describeOutcomes lists outcomes one per line, for messages.
func describeOutcomes(outs []backendOutcome) string {
	var b strings.Builder
	for _, o := range outs {
		b.WriteString("\t" + o.String() + "\n")
	}
	return b.String()
}
