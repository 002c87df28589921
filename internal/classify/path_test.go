package classify

import (
	"slices"
	"strings"
	"testing"
)

// classifyCase is one request path and what classification must make of it.
type classifyCase struct {
	path string
	want Target
}

func restTarget(tenant, id string) Target {
	return Target{Route: REST, Tenant: tenant, IDSegment: id}
}

func agentsTarget(tenant string) Target {
	return Target{Route: Agents, Tenant: tenant}
}

func soapTarget(tenant string) Target {
	return Target{Route: SOAP, Tenant: tenant}
}

// classifyCases is shared by TestClassify, FuzzClassify's seeds and the
// benchmarks.
var classifyCases = []classifyCase{
	// REST, canonical and case variants.
	{"/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	// ASP.NET cookieless-state segments, which System.Web removes.
	{"/api/v1/ChatSession/427/(S(abc))/Reset", restTarget("", "427")},
	{"/(S(abc))/api/v1/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/(A(x))(F(y))/ChatSession/427/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/(X())/427/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/%28S%28abc%29%29/Reset", restTarget("", "427")},
	{"/api/v1/ChatSession/427/(notcookieless)/Reset", Target{}},
	{"/api/v1/ChatSession/427/(S(a)b)/Reset", Target{}},
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
	{"/api/v1/ChatSession/ABC/Reset", restTarget("", "ABC")},
	{"/api/v1/ChatSession/-1/Reset", restTarget("", "-1")},
	{"/api/v1/ChatSession/0427/Reset", restTarget("", "0427")},
	{"/api/v1/ChatSession/0/Reset", restTarget("", "0")},
	{"/api/v1/ChatSession/99999999999/Reset", restTarget("", "99999999999")},
	{"/api/v1/ChatSession/%zz/Reset", restTarget("", "%zz")},
	{"/api/v1/ChatSession/%/Reset", restTarget("", "%")},
	{"/api/v1/ChatSession/4%202/Reset", restTarget("", "4 2")},
	{"/api/v1/ChatSession/Reset/Reset", restTarget("", "Reset")},

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
	{"", Target{}},
	{"/Remote/Services88/Contact.svc", Target{}},
	{"/Remote/Services88/Chat.svcx", Target{}},
	{"/Remote/Services88/Chat", Target{}},
	{"/", Target{}},
	{"//", Target{}},
	{"/api/v1/ChatSession/427", Target{}},
	{"/api/v1/ChatSession/427/Pickup", Target{}},
	{"/api/v1/ChatSession/427/AcceptTransfer", Target{}},
	{"/api/v1/ChatSession/427/Messages", Target{}},
	{"/api/v1/ChatSession/ForCurrentUser", Target{}},
	{"/api/v1/Contact/5", Target{}},
	{"/api/v1/User/currentPrincipal", Target{}},
	{"/api/v1/ChatSession/427/Reset/extra", Target{}},
	{"/api/v1/ChatSession/427/Reset%2Fextra", Target{}},
	{"/api/v1/ChatSession/427/Resets", Target{}},
	{"/api/v1/ChatSession/427/Reset/..", Target{}},
	{"/api/v1/ChatSession/Reset", Target{}},
	{"/v1/ChatSession/427/Reset", Target{}},
	{"/apix/v1/ChatSession/427/Reset", Target{}},
	{"/resetpassword", Target{}},
	{"/Reset", Target{}},
	{"/api/v1/Agents/Chat/ResetChatSessionX", Target{}},
	{"/api/v1/Agents/Chat/GetChatSession", Target{}},
	{"/api/v1/Agents/Chat/ResetChatSession/extra", Target{}},
	{"/api/v1/Agents/ResetChatSession", Target{}},
	{"/api/v1/Agents/Foo/ResetChatSession", Target{}},
	{"/api/v1/Contact/%35", Target{}},
	{`/api\v1\Contact\5`, Target{}},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		got := Path(tc.path)
		// Checked by TestClassifyPrefix and TestForwardPath.
		got.Prefix, got.Version, got.soapPath = "", "", ""
		if got != tc.want {
			t.Errorf("Path(%q) = %+v, want %+v", tc.path, got, tc.want)
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
		var got Target
		allocs := testing.AllocsPerRun(100, func() { got = Path(p) })
		if allocs != 0 {
			t.Errorf("Path(%q) allocates %v times per run, want 0", p, allocs)
		}
		if got.Route != None {
			t.Errorf("Path(%q).Route = %q, want none", p, got.Route)
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
		{"/A/b/", []string{"A", "b"}},
		{"//a///b//", []string{"a", "b"}},
		{"/a/./b", []string{"a", "b"}},
		{"/a/../b", []string{"b"}},
		{"/../../a", []string{"a"}},
		{"/a/b/../../..", nil},
		{"/a/..;x/b", []string{"b"}},
		{"/a/.;x/b", []string{"a", "b"}},
		{`\a\B`, []string{"a", "B"}},
		{`/a\..\b`, []string{"b"}},
		{"/a%2Fb", []string{"a", "b"}},
		{"/a%2fb", []string{"a", "b"}},
		{"/a%5Cb", []string{"a", "b"}},
		{"/a%252Fb", []string{"a", "b"}},
		{"/a%25252Fb", []string{"a", "b"}},
		{"/a%2525252Fb", []string{"a", "b"}},
		// Decoding stops after maxDecodeRounds rounds.
		{"/a%252525252Fb", []string{"a%2Fb"}},
		{"/a/%2E%2E/b", []string{"b"}},
		{"/A%42c", []string{"ABc"}},
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
		{"/a%00x/b", []string{"a", "b"}},
		{"/a/(S(x))/b/(A(y))(F(z))", []string{"a", "b"}},
	}
	for _, tc := range cases {
		got := normalise(tc.path, ownReading)
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("normalisePath(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

func BenchmarkClassifyPassThrough(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if Path("/Cust12345/api/v1/ChatSession/427/Pickup").Route != None {
			b.Fatal("classified as a reset")
		}
	}
}

func BenchmarkClassifyReset(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if Path("/Cust12345/api/v1/ChatSession/427/Reset").Route != REST {
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
		if got := Path(p); got.Route == None {
			t.Errorf("Path(%q) passes through; want it guarded", p)
		}
	}
}

func TestClassifyPrefix(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/api/v1/ChatSession/427/Reset", ""},
		{"/SuperOffice/api/v1/ChatSession/427/Reset", "/SuperOffice"},
		{"/Cust12345/api/v1/Agents/Chat/ResetChatSession", "/Cust12345"},
		{"/Super%4Ffffice./(S(x))/api/v1/ChatSession/427/Reset", "/SuperOfffice"},
		{"/a//b/../c/api/v1/ChatSession/427/Reset", "/a/c"},
	} {
		if got := Path(tc.path).Prefix; got != tc.want {
			t.Errorf("Path(%q).Prefix = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestNormalisePathAmbiguousDots: a segment of dots and spaces that is
// neither "." nor ".." has two readings, and Path guards the request if
// either reaches Reset.
func TestNormalisePathAmbiguousDots(t *testing.T) {
	cases := []struct {
		path          string
		asName, asUp  []string
		wantAmbiguous bool
	}{
		{"/a/.. /b", []string{"a", "b"}, []string{"b"}, true},
		{"/a/.../b", []string{"a", "b"}, []string{"b"}, true},
		{"/a/..%20%20/b", []string{"a", "b"}, []string{"b"}, true},
		{"/a/. ./b", []string{"a", "b"}, []string{"a", "b"}, false},
		{"/a/../b", []string{"b"}, []string{"b"}, false},
	}
	for _, tc := range cases {
		name := normalise(tc.path, ownReading)
		up := normalise(tc.path, reading{rounds: maxDecodeRounds, dotsAsParent: true})
		var f features
		f.add(percentDecode(tc.path))
		if !slices.Equal(name, tc.asName) || !slices.Equal(up, tc.asUp) || f.ambiguousDots != tc.wantAmbiguous {
			t.Errorf("normalise(%q) = %q / %q (ambiguous %v), want %q / %q (%v)",
				tc.path, name, up, f.ambiguousDots, tc.asName, tc.asUp, tc.wantAmbiguous)
		}
	}
	for _, p := range []string{
		"/api/v1/ChatSession/427/Reset/x/.. ",   // ".. " read as ".."
		"/api/v1/ChatSession/427/Reset/.../",    // "..." read as a trimmed name
		"/api/v1/ChatSession/427/Reset/x/...",   // "..." read as ".."
		"/api/v1/ChatSession/427/Reset/x/..%2e", // decoded to "..."
	} {
		if got := Path(p); got.Route != REST || got.IDSegment != "427" {
			t.Errorf("Path(%q) = %+v, want the REST reset of 427", p, got)
		}
	}
}

// TestForwardPath: the path an allowed reset is forwarded with is the
// normalised prefix and the canonical route, whatever the client spelled.
func TestForwardPath(t *testing.T) {
	cases := []struct {
		path string
		id   int32
		want string
	}{
		{"/api/v1/ChatSession/427/Reset", 427, "/api/v1/ChatSession/427/Reset"},
		{"/Cust12345/API/V1/chatsession/0427/RESET/", 427, "/Cust12345/api/V1/ChatSession/427/Reset"},
		{"/SuperOffice/x/../api/v1/ChatSession/427/(S(abc))/Reset.", 427, "/SuperOffice/api/v1/ChatSession/427/Reset"},
		{"/%53uperOffice/api/v1/ChatSession/%34%32%37/Reset%20", 427, "/SuperOffice/api/v1/ChatSession/427/Reset"},
		{`\SuperOffice\api\v1\Agents\Chat\ResetChatSession`, 427, "/SuperOffice/api/v1/Agents/Chat/ResetChatSession"},
		{"/Cust1/api/v1/agents/chat/resetchatsession;x", 9, "/Cust1/api/v1/Agents/Chat/ResetChatSession"},
		{"/SuperOffice/Remote/Services88/Chat.svc/basic", 9, "/SuperOffice/Remote/Services88/Chat.svc/basic"},
		{"/SuperOffice/Remote//Services88/./CHAT~1.SVC.", 9, "/SuperOffice/Remote/Services88/CHAT~1.SVC"},
	}
	for _, tc := range cases {
		if got := Path(tc.path).ForwardPath(tc.id); got != tc.want {
			t.Errorf("Path(%q).ForwardPath(%d) = %q, want %q", tc.path, tc.id, got, tc.want)
		}
	}
}

// TestPathReadings: paths that reach Reset only under a reading other
// than the guard's own (found by FuzzGuardMatchesBackend against a model
// of IIS and System.Web) are guarded, and decided on the id that reading
// gives.
func TestPathReadings(t *testing.T) {
	const rest = "/api/v1/ChatSession/427"
	for _, tc := range []struct{ name, path string }{
		{"cookieless groups in one segment", rest + "/(S(x)F(y))/Reset"},
		{"cookieless segment removed after ..", rest + "/Reset/(S(x))/.."},
		{"cookieless modifier cut as text", rest + "/Re/(S(x))set/(S(x))/%2E%2E"},
		{"cookieless with a trailing dot", rest + "/(S(x))./Reset"},
		{"';' is part of a segment to IIS", rest + "/Reset/..;/.."},
		{"decoded once, %2E%2E is a name", rest + "/Reset/%252E%252E/.."},
		{"dot-only segment is a name until trimmed", rest + "/Reset/.../.."},
		{"empty segment takes part in ..", rest + "/Reset//.."},
		{"a decoding proxy cuts at ?", rest + "/Reset%3Fx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Path(tc.path); got.Route != REST || got.IDSegment != "427" || got.Unclear {
				t.Errorf("Path(%q) = %+v, want the REST reset of 427", tc.path, got)
			}
		})
	}
}

// TestPathUnclear: a path naming a reset route's words with more
// readings than the budget allows is guarded as unclear, not passed.
func TestPathUnclear(t *testing.T) {
	pad := strings.Repeat("a", readingBudget/64)
	p := "/" + pad + "/api/v1/ChatSession/427/Reset/(S(x))/..;/%252e%252e//..%3F"
	if got := Path(p); !got.Unclear || got.Route != REST {
		t.Errorf("Path(long hostile path) = %+v, want an unclear REST target", got)
	}
	if got := Path("/" + pad + "/%41/contact/(S(x))/..;/x//.."); got.Route != None {
		t.Errorf("a long path without a reset word = %+v, want none", got)
	}
}
