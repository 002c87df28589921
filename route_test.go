package resetguard

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// classifyCase is one request path and what classification must make of it.
type classifyCase struct {
	path string
	want target
}

func restTarget(tenant, id string) target {
	return target{route: RouteREST, tenant: tenant, idSegment: id}
}

func agentsTarget(tenant string) target {
	return target{route: RouteAgents, tenant: tenant}
}

func soapTarget(tenant string) target {
	return target{route: RouteSOAP, tenant: tenant}
}

// classifyCases is shared by TestClassify, FuzzClassify's seeds and the
// benchmarks.
var classifyCases = []classifyCase{
	// REST, canonical and case variants.
	{"/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/chatsession/427/reset", restTarget("", "427")},
	{"/API/V1/CHATSESSION/427/RESET", restTarget("", "427")},
	{"/Api/V1/chatSession/427/rEsEt", restTarget("", "427")},
	// Prefixes: onsite install path and Online tenants.
	{"/SuperOffice/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/Cust12345/api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/cust12345/api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/CUST12345/api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/SuperOffice/Cust12345/api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/Cust12345/SuperOffice/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/Cust12345x/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/Cust/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/Cust12345;v=1/api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/Cust12345./api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/a/b/c/d/e/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v2/ChatSession/427/Reset", restTarget("", "427")},
	// Trailing slash, duplicate slashes, dot segments.
	{"/api/v1/ChatSession/427/Reset/", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset//", restTarget("", "427")},
	{"//api//v1//ChatSession//427//Reset", restTarget("", "427")},
	{"/Cust12345//api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	{"/api/v1/./ChatSession/./427/./Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset/.", restTarget("", "427")},
	{"/api/v1/x/../ChatSession/427/Reset", restTarget("", "427")},
	{"/x/../api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset/x/..", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Pickup/../Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/1/../427/Reset", restTarget("", "427")},
	{"/../../api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/..;x/427/Reset", restTarget("", "427")},
	// Backslash separators, raw and encoded.
	{`\api\v1\ChatSession\427\Reset`, restTarget("", "427")},
	{`/api/v1/ChatSession/427\Reset`, restTarget("", "427")},
	{`/Cust12345\api/v1\ChatSession/427\Reset\`, restTarget("Cust12345", "427")},
	{"/api/v1/ChatSession/427%5CReset", restTarget("", "427")},
	{"/api/v1/ChatSession/427%5cReset", restTarget("", "427")},
	// Percent-encoding: letters, slash, double and triple encoding, dots.
	{"/api/v1/ChatSession/427/%52eset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/%72%65%73%65%74", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Re%73et", restTarget("", "427")},
	{"/%61pi/v1/%43hat%53ession/427/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/%34%32%37/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427%2FReset", restTarget("", "427")},
	{"/api/v1/ChatSession/427%2fReset", restTarget("", "427")},
	{"/api%2Fv1%2FChatSession%2F427%2FReset", restTarget("", "427")},
	{"/api/v1/ChatSession/427%252FReset", restTarget("", "427")},
	{"/api/v1/ChatSession/427%25252FReset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/%2552eset", restTarget("", "427")},
	{"/api/v1/x/%2E%2E/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/x/.%2e/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset%2F", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset%3Bx=1", restTarget("", "427")},
	{"/%43ust12345/api/v1/ChatSession/427/Reset", restTarget("Cust12345", "427")},
	// ;param segments.
	{"/api/v1/ChatSession/427/Reset;x=1", restTarget("", "427")},
	{"/api;a/v1;b/ChatSession;c/427;d/Reset;e", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset;", restTarget("", "427")},
	// Trailing dots and spaces, which IIS ignores.
	{"/api/v1/ChatSession/427/Reset.", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset..", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset%2E", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset%20", restTarget("", "427")},
	{"/api/v1/ChatSession/427/Reset.%20.", restTarget("", "427")},
	{"/api/v1/ChatSession./427./Reset.", restTarget("", "427")},
	// Non-numeric or odd id segments: still guarded, the id is refused later.
	{"/api/v1/ChatSession/ABC/Reset", restTarget("", "abc")},
	{"/api/v1/ChatSession/-1/Reset", restTarget("", "-1")},
	{"/api/v1/ChatSession/0427/Reset", restTarget("", "0427")},
	{"/api/v1/ChatSession/0/Reset", restTarget("", "0")},
	{"/api/v1/ChatSession/99999999999/Reset", restTarget("", "99999999999")},
	{"/api/v1/ChatSession/%zz/Reset", restTarget("", "%zz")},
	{"/api/v1/ChatSession/%/Reset", restTarget("", "%")},
	{"/api/v1/ChatSession/4%202/Reset", restTarget("", "4 2")},
	{"/api/v1/ChatSession/Reset/Reset", restTarget("", "reset")},

	// Agents.
	{"/api/v1/Agents/Chat/ResetChatSession", agentsTarget("")},
	{"/api/v1/agents/chat/resetchatsession", agentsTarget("")},
	{"/API/V1/AGENTS/CHAT/RESETCHATSESSION", agentsTarget("")},
	{"/Api/v1/aGeNtS/cHaT/rEsEtChAtSeSsIoN", agentsTarget("")},
	{"/SuperOffice/api/v1/Agents/Chat/ResetChatSession", agentsTarget("")},
	{"/Cust12345/api/v1/Agents/Chat/ResetChatSession", agentsTarget("Cust12345")},
	{"/cust12345/api/v1/Agents/Chat/ResetChatSession", agentsTarget("Cust12345")},
	{"/api/v1/Agents/Chat/ResetChatSession/", agentsTarget("")},
	{"//api//v1//Agents//Chat//ResetChatSession//", agentsTarget("")},
	{"/api/v1/./Agents/./Chat/./ResetChatSession", agentsTarget("")},
	{"/api/v1/x/../Agents/Chat/ResetChatSession", agentsTarget("")},
	{"/api/v1/Agents/Chat/GetChatSession/../ResetChatSession", agentsTarget("")},
	{`\api\v1\Agents\Chat\ResetChatSession`, agentsTarget("")},
	{"/api/v1/Agents%5CChat%5CResetChatSession", agentsTarget("")},
	{"/api/v1/Agents/Chat/%52esetChatSession", agentsTarget("")},
	{"/api/v1/Agents/Chat/%72%65%73%65%74ChatSession", agentsTarget("")},
	{"/api/v1/Agents/Chat%2FResetChatSession", agentsTarget("")},
	{"/api/v1/Agents%2FChat%2FResetChatSession", agentsTarget("")},
	{"/api/v1/Agents/Chat%252FResetChatSession", agentsTarget("")},
	{"/api/v1/Agents;a/Chat;b/ResetChatSession;c", agentsTarget("")},
	{"/api/v1/Agents/Chat/ResetChatSession.", agentsTarget("")},
	{"/api/v1/Agents/Chat/ResetChatSession%20", agentsTarget("")},
	{"/api/v2/Agents/Chat/ResetChatSession", agentsTarget("")},

	// SOAP: the Chat service, whatever the spelling; the operation is
	// decided from headers and envelope (classifySOAP).
	{"/Remote/Services88/Chat.svc", soapTarget("")},
	{"/SuperOffice/Remote/Services88/Chat.svc", soapTarget("")},
	{"/Cust12345/Remote/Services88/Chat.svc", soapTarget("Cust12345")},
	{"/remote/services88/chat.svc", soapTarget("")},
	{"/REMOTE/SERVICES88/CHAT.SVC", soapTarget("")},
	{"/Remote/Services88/Chat.svc/", soapTarget("")},
	{"/Remote/Services88/Chat.svc.", soapTarget("")},
	{"/Remote/Services88/Chat.svc;x=1", soapTarget("")},
	{"//Remote//Services88//Chat.svc", soapTarget("")},
	{"/Remote/Services88/x/../Chat.svc", soapTarget("")},
	{`\Remote\Services88\Chat.svc`, soapTarget("")},
	{"/Remote/Services88%2FChat.svc", soapTarget("")},
	{"/Remote/Services88/Chat%2Esvc", soapTarget("")},
	{"/Remote/Services88/%43hat.svc", soapTarget("")},
	{"/Remote/Services88/Chat%252Esvc", soapTarget("")},
	{"/Remote/Services88/Chat.svc/basic", soapTarget("")},
	{"/Remote/Services88/Chat.svc/ResetChatSession", soapTarget("")},
	{"/Remote/Services88/CHAT~1.SVC", soapTarget("")},
	{"/Remote/Services87/Chat.svc", soapTarget("")},
	{"/Chat.svc", soapTarget("")},

	// Not guarded.
	{"", target{}},
	{"/Remote/Services88/Contact.svc", target{}},
	{"/Remote/Services88/Chat.svcx", target{}},
	{"/Remote/Services88/Chat", target{}},
	{"/", target{}},
	{"//", target{}},
	{"/api/v1/ChatSession/427", target{}},
	{"/api/v1/ChatSession/427/Pickup", target{}},
	{"/api/v1/ChatSession/427/AcceptTransfer", target{}},
	{"/api/v1/ChatSession/427/Messages", target{}},
	{"/api/v1/ChatSession/ForCurrentUser", target{}},
	{"/api/v1/Contact/5", target{}},
	{"/api/v1/User/currentPrincipal", target{}},
	{"/api/v1/ChatSession/427/Reset/extra", target{}},
	{"/api/v1/ChatSession/427/Reset%2Fextra", target{}},
	{"/api/v1/ChatSession/427/Resets", target{}},
	{"/api/v1/ChatSession/427/Reset/..", target{}},
	{"/api/v1/ChatSession/Reset", target{}},
	{"/v1/ChatSession/427/Reset", target{}},
	{"/apix/v1/ChatSession/427/Reset", target{}},
	{"/resetpassword", target{}},
	{"/Reset", target{}},
	{"/api/v1/Agents/Chat/ResetChatSessionX", target{}},
	{"/api/v1/Agents/Chat/GetChatSession", target{}},
	{"/api/v1/Agents/Chat/ResetChatSession/extra", target{}},
	{"/api/v1/Agents/ResetChatSession", target{}},
	{"/api/v1/Agents/Foo/ResetChatSession", target{}},
	{"/api/v1/Contact/%35", target{}},
	{`/api\v1\Contact\5`, target{}},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		got := classify(tc.path)
		got.prefix = "" // checked by TestClassifyPrefix
		if got != tc.want {
			t.Errorf("classify(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

// TestClassifyNoAllocPassThrough checks the fast path: an ordinary request
// is classified without allocating.
func TestClassifyNoAllocPassThrough(t *testing.T) {
	for _, p := range []string{
		"/",
		"/api/v1/Contact/5",
		"/api/v1/ChatSession/427/Pickup",
		"/api/v1/ChatSession/427",
		"/Cust12345/api/v1/ChatSession/ForCurrentUser",
		"/SuperOffice/api/v1/User/currentPrincipal",
	} {
		var got target
		allocs := testing.AllocsPerRun(100, func() { got = classify(p) })
		if allocs != 0 {
			t.Errorf("classify(%q) allocates %v times per run, want 0", p, allocs)
		}
		if got.route != RouteNone {
			t.Errorf("classify(%q).route = %q, want none", p, got.route)
		}
	}
}

func TestMightBeReset(t *testing.T) {
	cases := []struct {
		path string
		want bool
	}{
		{"", false},
		{"/", false},
		{"/api/v1/Contact/5", false},
		{"/api/v1/ChatSession/427/Pickup", false},
		{"/r", false},
		{"/rese", false},
		{"/reSe", false},
		{"/re/set", false},
		{"/reset", true},
		{"/RESET", true},
		{"/rEsEt", true},
		{"reset", true},
		{"/abcreset", true},
		{"/resetpassword", true},
		{"/api/v1/Agents/Chat/ResetChatSession", true},
		{"/x%41", true},
		{"%", true},
		{`/a\b`, true},
		{`\`, true},
	}
	for _, tc := range cases {
		if got := mightBeReset(tc.path); got != tc.want {
			t.Errorf("mightBeReset(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestNormalisePath(t *testing.T) {
	cases := []struct {
		path string
		want []string
	}{
		{"", nil},
		{"/", nil},
		{"//", nil},
		{"/A/b/", []string{"a", "b"}},
		{"//a///b//", []string{"a", "b"}},
		{"/a/./b", []string{"a", "b"}},
		{"/a/../b", []string{"b"}},
		{"/../../a", []string{"a"}},
		{"/a/b/../../..", nil},
		{"/a/..;x/b", []string{"b"}},
		{"/a/.;x/b", []string{"a", "b"}},
		{`\a\B`, []string{"a", "b"}},
		{`/a\..\b`, []string{"b"}},
		{"/a%2Fb", []string{"a", "b"}},
		{"/a%2fb", []string{"a", "b"}},
		{"/a%5Cb", []string{"a", "b"}},
		{"/a%252Fb", []string{"a", "b"}},
		{"/a%25252Fb", []string{"a", "b"}},
		{"/a%2525252Fb", []string{"a", "b"}},
		// Decoding stops after maxDecodeRounds rounds.
		{"/a%252525252Fb", []string{"a%2fb"}},
		{"/a/%2E%2E/b", []string{"b"}},
		{"/A%42c", []string{"abc"}},
		{"/a%zz/b", []string{"a%zz", "b"}},
		{"/%", []string{"%"}},
		{"/a%2", []string{"a%2"}},
		{"/a%", []string{"a%"}},
		{"/a;x=1/b;y", []string{"a", "b"}},
		{"/;x/b", []string{"b"}},
		{"/a./b../c. ", []string{"a", "b", "c"}},
		{"/a/.../b", []string{"a", "b"}},
		{"/a/. ./b", []string{"a", "b"}},
		{"/a%20/b", []string{"a", "b"}},
		{"/%20a/b", []string{" a", "b"}},
		{"/a%3Bx/b", []string{"a", "b"}},
	}
	for _, tc := range cases {
		got := normalisePath(tc.path)
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("normalisePath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// sessionIDCase is one id string and whether parseSessionID takes it.
type sessionIDCase struct {
	in   string
	want int32 // 0: refused
}

var sessionIDCases = []sessionIDCase{
	{"1", 1},
	{"427", 427},
	{"0427", 427},
	{"00000000000000000001", 1},
	{"2147483647", 2147483647},
	{"02147483647", 2147483647},
	{"0", 0},
	{"00", 0},
	{"", 0},
	{"-1", 0},
	{"-0", 0},
	{"+5", 0},
	{"2147483648", 0},
	{"4294967297", 0},
	{"9999999999", 0},
	{"99999999999", 0},
	{"1e3", 0},
	{" 5", 0},
	{"5 ", 0},
	{"5\n", 0},
	{"4 2", 0},
	{"0x10", 0},
	{"1_000", 0},
	{"1.0", 0},
	{"abc", 0},
	{"٣", 0}, // ARABIC-INDIC DIGIT THREE
	{"３", 0}, // FULLWIDTH DIGIT THREE
}

func TestParseSessionID(t *testing.T) {
	for _, tc := range sessionIDCases {
		got, err := parseSessionID(tc.in)
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("parseSessionID(%q) = %d, nil; want an error", tc.in, got)
		case tc.want == 0 && !errors.Is(err, errBadSessionID):
			t.Errorf("parseSessionID(%q) error = %v, want errBadSessionID", tc.in, err)
		case tc.want != 0 && (err != nil || got != tc.want):
			t.Errorf("parseSessionID(%q) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
		}
	}
}

const (
	ctJSON = "application/json"
	ctXML  = "application/xml"
	ctForm = "application/x-www-form-urlencoded"

	resetXMLNS = "http://www.superoffice.net/ws/crm/NetServer/Services88"
)

// bodyCase is one Agents request body and what sessionIDFromBody must
// make of it.
type bodyCase struct {
	name        string
	contentType string
	body        string
	want        int32 // 0: an error
	unsupported bool  // the error must be errUnsupportedBody
}

var bodyCases = []bodyCase{
	// JSON.
	{"json", ctJSON, `{"ChatSessionId":831}`, 831, false},
	{"json lower-case key", ctJSON, `{"chatsessionid":831}`, 831, false},
	{"json upper-case key", ctJSON, `{"CHATSESSIONID":831}`, 831, false},
	{"json escaped key", ctJSON, `{"ChatSession\u0049d":831}`, 831, false},
	{"json string value", ctJSON, `{"ChatSessionId":"831"}`, 831, false},
	{"json leading zero in string", ctJSON, `{"ChatSessionId":"0831"}`, 831, false},
	{"json whitespace", ctJSON, " \n{ \"ChatSessionId\" : 831 }\n ", 831, false},
	{"json extra fields", ctJSON, `{"a":1,"ChatSessionId":831,"b":{"c":[1,2,{"ChatSessionId":5}]},"d":null}`, 831, false},
	{"json max", ctJSON, `{"ChatSessionId":2147483647}`, 2147483647, false},
	{"json charset", "application/json; charset=utf-8", `{"ChatSessionId":831}`, 831, false},
	{"json upper-case media type", "Application/JSON", `{"ChatSessionId":831}`, 831, false},
	{"text/json", "text/json", `{"ChatSessionId":831}`, 831, false},
	{"+json suffix", "application/vnd.superoffice+json", `{"ChatSessionId":831}`, 831, false},
	{"json duplicate key", ctJSON, `{"ChatSessionId":831,"ChatSessionId":832}`, 0, false},
	{"json duplicate key same value", ctJSON, `{"ChatSessionId":831,"ChatSessionId":831}`, 0, false},
	{"json duplicate key differing case", ctJSON, `{"ChatSessionId":831,"chatsessionid":832}`, 0, false},
	{"json missing", ctJSON, `{"SessionId":831}`, 0, false},
	{"json empty object", ctJSON, `{}`, 0, false},
	{"json null", ctJSON, `null`, 0, false},
	{"json null value", ctJSON, `{"ChatSessionId":null}`, 0, false},
	{"json bool value", ctJSON, `{"ChatSessionId":true}`, 0, false},
	{"json array body", ctJSON, `[{"ChatSessionId":831}]`, 0, false},
	{"json bare number", ctJSON, `831`, 0, false},
	{"json bare string", ctJSON, `"831"`, 0, false},
	{"json trailing data", ctJSON, `{"ChatSessionId":831} x`, 0, false},
	{"json trailing object", ctJSON, `{"ChatSessionId":831}{"ChatSessionId":832}`, 0, false},
	{"json nested object value", ctJSON, `{"ChatSessionId":{"ChatSessionId":831}}`, 0, false},
	{"json array value", ctJSON, `{"ChatSessionId":[831]}`, 0, false},
	{"json float", ctJSON, `{"ChatSessionId":831.5}`, 0, false},
	{"json float integral", ctJSON, `{"ChatSessionId":831.0}`, 0, false},
	{"json exponent", ctJSON, `{"ChatSessionId":8.31e2}`, 0, false},
	{"json negative", ctJSON, `{"ChatSessionId":-831}`, 0, false},
	{"json zero", ctJSON, `{"ChatSessionId":0}`, 0, false},
	{"json too big", ctJSON, `{"ChatSessionId":2147483648}`, 0, false},
	{"json string with sign", ctJSON, `{"ChatSessionId":"+831"}`, 0, false},
	{"json string not a number", ctJSON, `{"ChatSessionId":"abc"}`, 0, false},
	{"json truncated", ctJSON, `{"ChatSessionId":831`, 0, false},
	{"json missing comma", ctJSON, `{"a":1 "ChatSessionId":831}`, 0, false},
	{"json trailing comma", ctJSON, `{"ChatSessionId":831,}`, 0, false},
	{"json empty body", ctJSON, ``, 0, false},
	{"json body is xml", ctJSON, `<ChatSessionId>831</ChatSessionId>`, 0, false},

	// XML.
	{"xml", ctXML, `<ResetChatSession xmlns="` + resetXMLNS + `"><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"text/xml", "text/xml", `<ResetChatSession xmlns="` + resetXMLNS + `"><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml charset", "application/xml; charset=utf-8", `<ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml declaration", ctXML, `<?xml version="1.0" encoding="utf-8"?><ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml lower-case element", ctXML, `<ResetChatSession><chatsessionid>831</chatsessionid></ResetChatSession>`, 831, false},
	{"xml prefixed element", ctXML, `<s:ResetChatSession xmlns:s="` + resetXMLNS + `"><s:ChatSessionId>831</s:ChatSessionId></s:ResetChatSession>`, 831, false},
	{"xml whitespace around id", ctXML, "<ResetChatSession><ChatSessionId>\n  831\n</ChatSessionId></ResetChatSession>", 831, false},
	{"xml char reference", ctXML, `<ResetChatSession><ChatSessionId>&#56;31</ChatSessionId></ResetChatSession>`, 831, false},
	{"xml cdata", ctXML, `<ResetChatSession><ChatSessionId><![CDATA[831]]></ChatSessionId></ResetChatSession>`, 831, false},
	{"xml doctype", ctXML, `<!DOCTYPE r [<!ENTITY x "831">]><ResetChatSession><ChatSessionId>&x;</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml doctype without entity", ctXML, `<!DOCTYPE ResetChatSession><ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml duplicate id", ctXML, `<ResetChatSession><ChatSessionId>831</ChatSessionId><ChatSessionId>832</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml duplicate id differing case", ctXML, `<ResetChatSession><ChatSessionId>831</ChatSessionId><chatsessionid>831</chatsessionid></ResetChatSession>`, 0, false},
	{"xml missing id", ctXML, `<ResetChatSession><SessionId>831</SessionId></ResetChatSession>`, 0, false},
	{"xml empty id", ctXML, `<ResetChatSession><ChatSessionId/></ResetChatSession>`, 0, false},
	{"xml markup in id", ctXML, `<ResetChatSession><ChatSessionId><b>831</b></ChatSessionId></ResetChatSession>`, 0, false},
	{"xml negative", ctXML, `<ResetChatSession><ChatSessionId>-831</ChatSessionId></ResetChatSession>`, 0, false},
	{"xml malformed", ctXML, `<ResetChatSession><ChatSessionId>831</ResetChatSession>`, 0, false},
	{"xml unclosed", ctXML, `<ResetChatSession><ChatSessionId>831`, 0, false},
	{"xml empty body", ctXML, ``, 0, false},

	// Form.
	{"form", ctForm, `ChatSessionId=831`, 831, false},
	{"form lower-case key, extra field", ctForm, `chatsessionid=831&x=1`, 831, false},
	{"form charset", ctForm + "; charset=utf-8", `x=1&ChatSessionId=831`, 831, false},
	{"form encoded key", ctForm, `Chat%53essionId=831`, 831, false},
	{"form encoded value", ctForm, `ChatSessionId=%38%33%31`, 831, false},
	{"form duplicate", ctForm, `ChatSessionId=831&ChatSessionId=832`, 0, false},
	{"form duplicate differing case", ctForm, `ChatSessionId=831&chatsessionid=831`, 0, false},
	{"form missing", ctForm, `x=1`, 0, false},
	{"form empty value", ctForm, `ChatSessionId=`, 0, false},
	{"form key only", ctForm, `ChatSessionId`, 0, false},
	{"form bad escape", ctForm, `ChatSessionId=%zz`, 0, false},
	{"form semicolon", ctForm, `ChatSessionId=831;x=1`, 0, false},
	{"form empty body", ctForm, ``, 0, false},
	{"form body is json", ctForm, `{"ChatSessionId":831}`, 0, false},

	// No content type: sniffed from the first non-space byte.
	{"sniffed json", "", `{"ChatSessionId":831}`, 831, false},
	{"sniffed json after space", "", " \r\n\t{\"ChatSessionId\":831}", 831, false},
	{"sniffed xml", "", `<ResetChatSession><ChatSessionId>831</ChatSessionId></ResetChatSession>`, 831, false},
	{"sniffed form", "", `ChatSessionId=831`, 831, false},
	{"sniffed empty", "", ``, 0, false},
	{"sniffed blank", "", " \n ", 0, false},
	{"sniffed json array", "", `[831]`, 0, false},

	// Unsupported and malformed content types.
	{"multipart", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"ChatSessionId\"\r\n\r\n831\r\n--x--\r\n", 0, true},
	{"text/plain", "text/plain", `ChatSessionId=831`, 0, true},
	{"octet-stream", "application/octet-stream", `{"ChatSessionId":831}`, 0, true},
	{"malformed content type", "application/json; charset", `{"ChatSessionId":831}`, 0, true},
	{"malformed content type slash", "/json", `{"ChatSessionId":831}`, 0, true},
	{"content type without subtype", "json", `{"ChatSessionId":831}`, 0, true},
}

func TestSessionIDFromBody(t *testing.T) {
	for _, tc := range bodyCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sessionIDFromBody(tc.contentType, []byte(tc.body))
			if tc.want != 0 {
				if err != nil || got != tc.want {
					t.Fatalf("sessionIDFromBody(%q, %q) = %d, %v; want %d, nil", tc.contentType, tc.body, got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("sessionIDFromBody(%q, %q) = %d, nil; want an error", tc.contentType, tc.body, got)
			}
			if got != 0 {
				t.Errorf("sessionIDFromBody(%q, %q) = %d with error %v; want 0 with an error", tc.contentType, tc.body, got, err)
			}
			if unsup := errors.Is(err, errUnsupportedBody); unsup != tc.unsupported {
				t.Errorf("sessionIDFromBody(%q, %q) error %v: errors.Is(errUnsupportedBody) = %v, want %v", tc.contentType, tc.body, err, unsup, tc.unsupported)
			}
		})
	}
}

// TestSessionIDFromBodyDoesNotModifyBody checks that reading the id leaves
// the bytes that will be restored for the backend alone.
func TestSessionIDFromBodyDoesNotModifyBody(t *testing.T) {
	for _, tc := range bodyCases {
		body := []byte(tc.body)
		_, _ = sessionIDFromBody(tc.contentType, body)
		if string(body) != tc.body {
			t.Errorf("%s: body changed to %q", tc.name, body)
		}
	}
}

// routePattern reports whether segs ends in a documented reset route
// (REST or Agents) or holds the Chat service (SOAP), independently of
// classify's own checks.
func routePattern(segs []string) (Route, bool) {
	n := len(segs)
	if n < 5 {
		if slices.Contains(segs, "chat.svc") {
			return RouteSOAP, true
		}
		return RouteNone, false
	}
	tail := segs[n-5:]
	// Any API version: the backend's router takes v1, v2, … alike.
	if tail[0] == "api" && tail[2] == "chatsession" && tail[4] == "reset" {
		return RouteREST, true
	}
	if tail[0] == "api" && slices.Equal(tail[2:], []string{"agents", "chat", "resetchatsession"}) {
		return RouteAgents, true
	}
	if slices.Contains(segs, "chat.svc") {
		return RouteSOAP, true
	}
	return RouteNone, false
}

func asciiCase(s string, upper bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case upper && c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && c >= 'A' && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}

func FuzzClassify(f *testing.F) {
	for _, tc := range classifyCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := classify(p)
		segs := normalisePath(p)
		if r, ok := routePattern(segs); ok && got.route != r {
			t.Fatalf("classify(%q).route = %q, but normalisePath gives %q (a %s route)", p, got.route, segs, r)
		}
		if got.route == RouteNone && got != (target{}) {
			t.Fatalf("classify(%q) = %+v: fields set without a route", p, got)
		}
		if got.route == RouteSOAP && !slices.ContainsFunc(segs, isChatService) {
			t.Fatalf("classify(%q) = soap, but normalisePath gives %q", p, segs)
		}
		if got.route == RouteREST || got.route == RouteAgents {
			n := len(segs)
			if n < 5 || segs[n-5] != "api" {
				t.Fatalf("classify(%q) = %+v, but normalisePath gives %q", p, got, segs)
			}
			if got.route == RouteREST && got.idSegment != segs[n-2] {
				t.Fatalf("classify(%q).idSegment = %q, want %q", p, got.idSegment, segs[n-2])
			}
			if got.route == RouteAgents && got.idSegment != "" {
				t.Fatalf("classify(%q).idSegment = %q on the Agents route", p, got.idSegment)
			}
			if got.tenant != "" && !strings.HasPrefix(got.tenant, "Cust") {
				t.Fatalf("classify(%q).tenant = %q", p, got.tenant)
			}
		}
		// Matching is ASCII case-insensitive.
		for _, upper := range []bool{false, true} {
			if o := classify(asciiCase(p, upper)); o != got {
				t.Fatalf("classify(%q) = %+v but classify(%q) = %+v", p, got, asciiCase(p, upper), o)
			}
		}
		// A trailing slash is ignored and any prefix may stand in front.
		if strings.HasPrefix(p, "/") {
			for _, q := range []string{p + "/", "/SuperOffice" + p} {
				if o := classify(q); o.route != got.route || o.idSegment != got.idSegment {
					t.Fatalf("classify(%q) = %+v but classify(%q) = %+v", p, got, q, o)
				}
			}
		}
	})
}

func FuzzSessionIDFromBody(f *testing.F) {
	for _, tc := range bodyCases {
		f.Add(tc.contentType, []byte(tc.body))
	}
	for _, tc := range sessionIDCases {
		f.Add(ctJSON, []byte(fmt.Sprintf(`{"ChatSessionId":%q}`, tc.in)))
		f.Add(ctForm, []byte("ChatSessionId="+tc.in))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		orig := string(body)
		id, err := sessionIDFromBody(contentType, body)
		if err == nil && (id < 1 || id > 2147483647) {
			t.Fatalf("sessionIDFromBody(%q, %q) = %d, nil: out of range", contentType, body, id)
		}
		if err != nil && id != 0 {
			t.Fatalf("sessionIDFromBody(%q, %q) = %d with error %v", contentType, body, id, err)
		}
		if string(body) != orig {
			t.Fatalf("sessionIDFromBody modified the body")
		}
	})
}

func BenchmarkClassifyPassThrough(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if classify("/Cust12345/api/v1/ChatSession/427/Pickup").route != RouteNone {
			b.Fatal("classified as a reset")
		}
	}
}

func BenchmarkClassifyReset(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if classify("/Cust12345/api/v1/ChatSession/427/Reset").route != RouteREST {
			b.Fatal("not classified as a reset")
		}
	}
}

// TestClassifyUnicodeLookAlikes: spellings a case-insensitive .NET router
// or IIS may map onto the reset route are guarded too.
func TestClassifyUnicodeLookAlikes(t *testing.T) {
	for _, p := range []string{
		"/api/v1/ChatSession/427/Re%C5%BFet",        // ſ (U+017F) folds to s
		"/api/v1/ChatSe%C5%BF%C5%BFion/427/Reset",   // in another segment
		"/api/v1/ChatSession/427/Reset%09",          // trailing tab
		"/api/v1/ChatSession/427/Reset%C2%A0",       // trailing no-break space
		"/api/v1/ChatSession/427/%u0052eset",        // IIS %u encoding
		"/api/v1/ChatSession/427/%U0052%U0045SET",   // upper-case %U
		"/api/v1/Agents/Chat/ResetChatSe%C5%BFsion", // Agents route
	} {
		if got := classify(p); got.route == RouteNone {
			t.Errorf("classify(%q) passes through; want it guarded", p)
		}
	}
}

func TestClassifyPrefix(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/ChatSession/427/Reset", ""},
		{"/SuperOffice/api/v1/ChatSession/427/Reset", "/superoffice"},
		{"/Cust12345/api/v1/Agents/Chat/ResetChatSession", "/cust12345"},
		{"/a//b/../c/api/v1/ChatSession/427/Reset", "/a/c"},
	} {
		if got := classify(tc.path).prefix; got != tc.want {
			t.Errorf("classify(%q).prefix = %q, want %q", tc.path, got, tc.want)
		}
	}
}
