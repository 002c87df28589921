package classify

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/classify/soaptest"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

type soapCase struct {
	name      string
	req       soapRequest
	wantReset bool
	wantID    int32
	wantErr   error
}

var soapCases = []soapCase{
	// Resets, every way of naming the operation.
	{"soap 1.1", soapRequest{actions: []string{soaptest.ResetAction}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"soap 1.1 unquoted action", soapRequest{actions: []string{soaptest.NS + "/ResetChatSession"}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"soap 1.1 action case", soapRequest{actions: []string{`"` + soaptest.NS + `/RESETCHATSESSION"`}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"soap 1.1 action trailing slash", soapRequest{actions: []string{`"` + soaptest.NS + `/ResetChatSession/"`}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"soap 1.1 urn action", soapRequest{actions: []string{`"urn:chat:ResetChatSession"`}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"soap 1.2 action parameter", soapRequest{contentType: soaptest.ContentType12, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"no action, body decides", soapRequest{contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"empty SOAPAction, body decides", soapRequest{actions: []string{`""`}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"ws-addressing action", soapRequest{contentType: "application/soap+xml", body: []byte(soaptest.Envelope(`<a:Action xmlns:a="http://www.w3.org/2005/08/addressing">`+soaptest.NS+`/ResetChatSession</a:Action>`, soaptest.Reset("831")))}, true, 831, nil},
	{"no content type", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, true, 831, nil},
	{"id with spaces and leading zeros", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset(" 0831 ")))}, true, 831, nil},
	{"other prefixes and a credentials header", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(`<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><Credentials><Ticket>7T:x</Ticket></Credentials></env:Header><env:Body><r:ResetChatSession xmlns:r="` + soaptest.NS + `"><r:ChatSessionId>5</r:ChatSessionId></r:ResetChatSession></env:Body></env:Envelope>`)}, true, 5, nil},
	{"lower-case operation element", soapRequest{body: []byte(soaptest.Envelope("", `<resetchatsession><chatsessionid>7</chatsessionid></resetchatsession>`))}, true, 7, nil},

	// Resets with a bad id: guarded and refused.
	{"id missing", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", `<ResetChatSession/>`))}, true, 0, errBadSessionID},
	{"id twice", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", `<ResetChatSession><ChatSessionId>1</ChatSessionId><ChatSessionId>2</ChatSessionId></ResetChatSession>`))}, true, 0, errBadSessionID},
	{"id not a number", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset("x")))}, true, 0, errBadSessionID},
	{"id zero", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset("0")))}, true, 0, errBadSessionID},
	{"id with markup", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset("<b>1</b>")))}, true, 0, errBadSessionID},
	{"second reset element", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset("1")+soaptest.Reset("2")))}, true, 0, errBadSessionID},

	// Other operations pass through.
	{"other operation", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Get("831")))}, false, 0, nil},
	{"other operation, soap 1.2", soapRequest{contentType: `application/soap+xml; action="` + soaptest.NS + `/GetChatSessionEntity"`, body: []byte(soaptest.Envelope("", soaptest.Get("831")))}, false, 0, nil},
	{"other operation, no action", soapRequest{contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Get("831")))}, false, 0, nil},
	{"ResetChatSessionX is another operation", soapRequest{actions: []string{soaptest.Action("ResetChatSessionX")}, body: []byte(soaptest.Envelope("", `<ResetChatSessionX><ChatSessionId>1</ChatSessionId></ResetChatSessionX>`))}, false, 0, nil},

	// Ambiguity: refused.
	{"header other, body reset", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, false, 0, errSOAPAmbiguous},
	{"header reset, body other", soapRequest{actions: []string{soaptest.ResetAction}, contentType: soaptest.ContentType11, body: []byte(soaptest.Envelope("", soaptest.Get("831")))}, false, 0, errSOAPAmbiguous},
	{"soap 1.2 parameter other, body reset", soapRequest{contentType: `application/soap+xml; action="` + soaptest.NS + `/GetChatSessionEntity"`, body: []byte(soaptest.Envelope("", soaptest.Reset("831")))}, false, 0, errSOAPAmbiguous},
	{"SOAPAction and soap 1.2 parameter disagree", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, contentType: soaptest.ContentType12, body: []byte(soaptest.Envelope("", soaptest.Get("1")))}, false, 0, errSOAPAmbiguous},
	{"ws-addressing other, body reset", soapRequest{body: []byte(soaptest.Envelope(`<Action>`+soaptest.NS+`/GetChatSessionEntity</Action>`, soaptest.Reset("1")))}, false, 0, errSOAPAmbiguous},
	{"ws-addressing reset, header other", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, body: []byte(soaptest.Envelope(`<Action>`+soaptest.NS+`/ResetChatSession</Action>`, soaptest.Get("1")))}, false, 0, errSOAPAmbiguous},
	{"reset hidden after another operation", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, body: []byte(soaptest.Envelope("", soaptest.Get("1")+soaptest.Reset("1")))}, false, 0, errSOAPAmbiguous},
	{"two SOAPAction headers", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity"), soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Get("1")))}, false, 0, errSOAPAmbiguous},
	{"path info names the reset, body other", soapRequest{pathInfo: []string{"resetchatsession"}, body: []byte(soaptest.Envelope("", soaptest.Get("1")))}, false, 0, errSOAPAmbiguous},

	// Undeterminable: refused.
	{"no action, empty body", soapRequest{contentType: soaptest.ContentType11}, false, 0, errSOAPEnvelope},
	{"action other, empty body", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}}, false, 0, errSOAPEnvelope},
	{"action reset, not xml", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(`{"ChatSessionId":1}`)}, false, 0, errSOAPEnvelope},
	{"no action, empty Body element", soapRequest{body: []byte(soaptest.Envelope("", ""))}, false, 0, errSOAPEnvelope},
	{"truncated envelope", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, body: []byte(soaptest.Envelope("", soaptest.Get("1"))[:60])}, false, 0, errSOAPEnvelope},
	{"root is not an envelope", soapRequest{body: []byte(soaptest.Reset("1"))}, false, 0, errSOAPEnvelope},
	{"two roots", soapRequest{body: []byte(soaptest.Envelope("", soaptest.Get("1")) + soaptest.Envelope("", soaptest.Reset("1")))}, false, 0, errSOAPEnvelope},
	{"two Body elements", soapRequest{body: []byte(`<Envelope><Body>` + soaptest.Get("1") + `</Body><Body>` + soaptest.Reset("1") + `</Body></Envelope>`)}, false, 0, errSOAPEnvelope},
	{"undefined entity", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(soaptest.Envelope("", soaptest.Reset("&id;")))}, false, 0, errSOAPEnvelope},
	{"utf-16 declaration", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(`<?xml version="1.0" encoding="utf-16"?>` + soaptest.Envelope("", soaptest.Reset("1"))[38:])}, false, 0, errSOAPEnvelope},
	{"malformed content type", soapRequest{contentType: `text/xml; action="a"; action="b"`, body: []byte(soaptest.Envelope("", soaptest.Get("1")))}, false, 0, errSOAPEnvelope},
	{"too deep", soapRequest{body: []byte(`<Envelope><Body>` + nest(100) + `</Body></Envelope>`)}, false, 0, errSOAPEnvelope},
	{"markup in the addressing action", soapRequest{body: []byte(soaptest.Envelope(`<Action><x/>ResetChatSession</Action>`, soaptest.Get("1")))}, false, 0, errSOAPEnvelope},

	// DTDs: refused.
	{"doctype", soapRequest{actions: []string{soaptest.ResetAction}, body: []byte(`<?xml version="1.0"?><!DOCTYPE Envelope [<!ENTITY id "1">]>` + soaptest.Envelope("", soaptest.Reset("&id;"))[38:])}, false, 0, errXMLDTD},
	{"billion laughs", soapRequest{actions: []string{soaptest.Action("GetChatSessionEntity")}, body: []byte(`<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Envelope><Body><GetChatSessionEntity>&lol2;</GetChatSessionEntity></Body></Envelope>`)}, false, 0, errXMLDTD},
	{"external entity", soapRequest{body: []byte(`<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><Envelope><Body><ResetChatSession><ChatSessionId>&xxe;</ChatSessionId></ResetChatSession></Body></Envelope>`)}, false, 0, errXMLDTD},
}

func nest(n int) string {
	s := ""
	for range n {
		s = "<a>" + s + "</a>"
	}
	return s
}

func TestClassifySOAP(t *testing.T) {
	for _, tc := range soapCases {
		t.Run(tc.name, func(t *testing.T) {
			reset, id, err := classifySOAP(tc.req)
			if reset != tc.wantReset || id != tc.wantID || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("classifySOAP = %v, %d, %v; want %v, %d, %v", reset, id, err, tc.wantReset, tc.wantID, tc.wantErr)
			}
		})
	}
}

func TestActionOperation(t *testing.T) {
	for in, want := range map[string]string{
		soaptest.ResetAction:          "ResetChatSession",
		`  "` + soaptest.NS + `/X/" `: "X",
		"urn:a:b#ResetChatSession":    "ResetChatSession",
		`""`:                          "",
		"":                            "",
		"ResetChatSession":            "ResetChatSession",
		`'ResetChatSession'`:          "ResetChatSession",
	} {
		if got := actionOperation(in); got != want {
			t.Errorf("actionOperation(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzClassifySOAP: never a panic; a reset has an id in range or an
// error; an envelope whose first Body element is ResetChatSession is
// never passed through.
func FuzzClassifySOAP(f *testing.F) {
	for _, tc := range soapCases {
		act := ""
		if len(tc.req.actions) > 0 {
			act = tc.req.actions[0]
		}
		f.Add(act, tc.req.contentType, tc.req.body)
	}
	f.Fuzz(func(t *testing.T, soapAction, contentType string, body []byte) {
		var actions []string
		if soapAction != "" {
			actions = []string{soapAction}
		}
		orig := string(body)
		reset, id, err := classifySOAP(soapRequest{actions: actions, contentType: contentType, body: body})
		if string(body) != orig {
			t.Fatal("classifySOAP modified the body")
		}
		if err == nil && reset && (id < 1 || id > 2147483647) {
			t.Fatalf("reset with id %d and no error", id)
		}
		if err != nil && id != 0 {
			t.Fatalf("id %d with error %v", id, err)
		}
		if ticket, present, terr := envelopeTicket(body); terr == nil && present && (ticket == "" || strings.TrimSpace(ticket) != ticket) {
			t.Fatalf("envelope credentials accepted with ticket %q", ticket)
		} else if terr == nil && !present && ticket != "" {
			t.Fatalf("ticket %q without credentials", ticket)
		}
		if err == nil && !reset {
			env, perr := parseEnvelope(body)
			if perr != nil {
				t.Fatalf("passed through an envelope that does not parse: %v", perr)
			}
			if strings.EqualFold(env.operation, soapResetOperation) {
				t.Fatalf("passed through a ResetChatSession envelope (action %q, content type %q)", soapAction, contentType)
			}
			if strings.EqualFold(actionOperation(soapAction), soapResetOperation) {
				t.Fatalf("passed through a request whose SOAPAction is %q", soapAction)
			}
			if _, params, err := mime.ParseMediaType(contentType); err == nil && strings.EqualFold(actionOperation(params["action"]), soapResetOperation) {
				t.Fatalf("passed through a request whose Content-Type is %q", contentType)
			}
		}
	})
}

func TestEnvelopeTicket(t *testing.T) {
	withHeader := func(h string) []byte { return []byte(soaptest.Envelope(h, soaptest.Reset("1"))) }
	cases := []struct {
		name        string
		body        []byte
		wantTicket  string
		wantPresent bool
		wantErr     error
	}{
		{"no header", withHeader(""), "", false, nil},
		{"header without credentials", withHeader(`<Action>x</Action>`), "", false, nil},
		{"one ticket", withHeader(`<Credentials xmlns="` + soaptest.NS + `"><Ticket> 7T:dGlja2V0 </Ticket></Credentials>`), "7T:dGlja2V0", true, nil},
		{"ticket in another case and prefix", withHeader(`<c:CREDENTIALS xmlns:c="x"><c:ticket>7T:abc</c:ticket></c:CREDENTIALS>`), "7T:abc", true, nil},
		{"nested credentials", withHeader(`<Wrap><Credentials><Ticket>7T:abc</Ticket></Credentials></Wrap>`), "7T:abc", true, nil},
		{"empty credentials", withHeader(`<Credentials/>`), "", true, errSOAPCredentials},
		{"empty ticket", withHeader(`<Credentials><Ticket></Ticket></Credentials>`), "", true, errSOAPCredentials},
		{"user and password", withHeader(`<Credentials><Username>u</Username><Password>p</Password></Credentials>`), "", true, errSOAPCredentials},
		{"ticket and password", withHeader(`<Credentials><Ticket>7T:a</Ticket><Password>p</Password></Credentials>`), "", true, errSOAPCredentials},
		{"two tickets", withHeader(`<Credentials><Ticket>7T:a</Ticket><Ticket>7T:b</Ticket></Credentials>`), "", true, errSOAPCredentials},
		{"two credentials", withHeader(`<Credentials><Ticket>7T:a</Ticket></Credentials><Credentials><Ticket>7T:b</Ticket></Credentials>`), "", true, errSOAPCredentials},
		{"markup in the ticket", withHeader(`<Credentials><Ticket><b>7T:a</b></Ticket></Credentials>`), "", true, errSOAPCredentials},
		{"not an envelope", []byte("x"), "", false, errSOAPEnvelope},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ticket, present, err := envelopeTicket(tc.body)
			if ticket != tc.wantTicket || present != tc.wantPresent || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("envelopeTicket = %q, %v, %v; want %q, %v, %v", ticket, present, err, tc.wantTicket, tc.wantPresent, tc.wantErr)
			}
		})
	}
}

// TestInspectSOAP: what the guard learns of a Chat.svc request: it
// passes, it is a reset call with its id and envelope credentials, or it
// is refused with the status, reason and fixed message of its failure.
func TestInspectSOAP(t *testing.T) {
	const (
		msgEnvelope  = "the operation of this Chat service call cannot be determined"
		msgAmbiguous = "the SOAP action headers and the envelope disagree about ResetChatSession"
		msgBadID     = "the ResetChatSession envelope holds no single valid ChatSessionId"
	)
	reset := soaptest.Envelope("", soaptest.Reset("427"))
	withCredentials := func(c string) string {
		return soaptest.Envelope("<Credentials>"+c+"</Credentials>", soaptest.Reset("427"))
	}
	resetAction := map[string]string{"SOAPAction": soaptest.ResetAction}
	cases := []struct {
		name        string
		method      string
		target      string
		header      map[string]string
		body        string
		wantPass    bool
		wantCall    *SOAPCall
		wantStatus  int
		wantReason  string
		wantMessage string
	}{
		{name: "WSDL", method: http.MethodGet, target: "/Remote/Services88/Chat.svc?wsdl", wantPass: true},
		{name: "HEAD", method: http.MethodHead, wantPass: true},
		{name: "preflight", method: http.MethodOptions, wantPass: true},
		{name: "other operation", header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")},
			body: soaptest.Envelope("", soaptest.Get("427")), wantPass: true},
		{name: "reset", header: resetAction, body: reset, wantCall: &SOAPCall{SessionID: 427}},
		{name: "reset by GET with a body", method: http.MethodGet, header: resetAction, body: reset, wantCall: &SOAPCall{SessionID: 427}},
		{name: "envelope ticket", header: resetAction, body: withCredentials("<Ticket>7T:abc</Ticket>"),
			wantCall: &SOAPCall{SessionID: 427, EnvelopeCredentials: true, EnvelopeTicket: "7T:abc"}},
		{name: "envelope user and password", header: resetAction, body: withCredentials("<Username>u</Username><Password>p</Password>"),
			wantCall: &SOAPCall{SessionID: 427, EnvelopeCredentials: true}},
		{name: "bodiless GET with a method override", method: http.MethodGet, header: map[string]string{"X-HTTP-Method-Override": "POST"},
			wantStatus: 400, wantReason: refusal.SOAPEnvelopeInvalid, wantMessage: msgEnvelope},
		{name: "not an envelope", body: "hello", wantStatus: 400, wantReason: refusal.SOAPEnvelopeInvalid, wantMessage: msgEnvelope},
		{name: "header and body disagree", header: map[string]string{"SOAPAction": soaptest.Action("GetChatSessionEntity")}, body: reset,
			wantStatus: 400, wantReason: refusal.SOAPActionAmbiguous, wantMessage: msgAmbiguous},
		{name: "path info names the reset", target: "/Remote/Services88/Chat.svc/ResetChatSession", body: soaptest.Envelope("", soaptest.Get("1")),
			wantStatus: 400, wantReason: refusal.SOAPActionAmbiguous, wantMessage: msgAmbiguous},
		{name: "bad id", header: resetAction, body: soaptest.Envelope("", soaptest.Reset("-1")),
			wantStatus: 400, wantReason: refusal.BadSessionID, wantMessage: msgBadID},
		{name: "DTD", header: resetAction, body: `<!DOCTYPE e><Envelope><Body>` + soaptest.Reset("1") + `</Body></Envelope>`,
			wantStatus: 400, wantReason: refusal.XMLDTDRefused, wantMessage: "XML document type declarations are not accepted"},
		{name: "body past the bound", header: resetAction, body: soaptest.Envelope("", soaptest.Reset(strings.Repeat("1", 2000))),
			wantStatus: 413, wantReason: refusal.RequestBodyTooLarge, wantMessage: refusal.MessageBodyTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := chatServiceRequest(tc.method, tc.target, tc.header, tc.body)
			call, pass, ref := InspectSOAP(httptest.NewRecorder(), r, 1024, time.Second)
			if pass != tc.wantPass || !reflect.DeepEqual(call, tc.wantCall) {
				t.Fatalf("InspectSOAP = %+v, %v, %v; want %+v, %v", call, pass, ref, tc.wantCall, tc.wantPass)
			}
			if tc.wantStatus == 0 {
				if ref != nil {
					t.Fatalf("InspectSOAP refused: %v", ref)
				}
				if got, _ := io.ReadAll(r.Body); string(got) != tc.body {
					t.Errorf("body left for the backend %q, want %q", got, tc.body)
				}
				return
			}
			if ref == nil || ref.Status != tc.wantStatus || ref.Reason() != tc.wantReason || ref.Message != tc.wantMessage {
				t.Fatalf("InspectSOAP refusal %v; want %d %q %q", ref, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

// chatServiceRequest is a request on the Chat service: a POST to
// /Cust1/Remote/Services88/Chat.svc unless method or target say otherwise.
func chatServiceRequest(method, target string, header map[string]string, body string) *http.Request {
	if method == "" {
		method = http.MethodPost
	}
	if target == "" {
		target = "/Cust1/Remote/Services88/Chat.svc"
	}
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return r
}
