package resetguard

import (
	"errors"
	"mime"
	"strings"
	"testing"
)

const (
	soapNS       = "http://www.superoffice.net/ws/crm/NetServer/Services88"
	soap11Action = `"` + soapNS + `/ResetChatSession"`
	ctSOAP11     = "text/xml; charset=utf-8"
	ctSOAP12     = `application/soap+xml; charset=utf-8; action="` + soapNS + `/ResetChatSession"`
)

// soapEnvelope wraps a Body payload (and optionally a Header) in a SOAP
// 1.1 envelope.
func soapEnvelope(header, body string) string {
	h := ""
	if header != "" {
		h = "<s:Header>" + header + "</s:Header>"
	}
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">` + h + "<s:Body>" + body + "</s:Body></s:Envelope>"
}

func resetOp(id string) string {
	return `<ResetChatSession xmlns="` + soapNS + `"><ChatSessionId>` + id + `</ChatSessionId></ResetChatSession>`
}

func getOp(id string) string {
	return `<GetChatSessionEntity xmlns="` + soapNS + `"><ChatSessionEntityId>` + id + `</ChatSessionEntityId></GetChatSessionEntity>`
}

func soapAction(op string) string { return `"` + soapNS + "/" + op + `"` }

type soapCase struct {
	name      string
	req       soapRequest
	wantReset bool
	wantID    int32
	wantErr   error
}

var soapCases = []soapCase{
	// Resets, every way of naming the operation.
	{"soap 1.1", soapRequest{actions: []string{soap11Action}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"soap 1.1 unquoted action", soapRequest{actions: []string{soapNS + "/ResetChatSession"}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"soap 1.1 action case", soapRequest{actions: []string{`"` + soapNS + `/RESETCHATSESSION"`}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"soap 1.1 action trailing slash", soapRequest{actions: []string{`"` + soapNS + `/ResetChatSession/"`}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"soap 1.1 urn action", soapRequest{actions: []string{`"urn:chat:ResetChatSession"`}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"soap 1.2 action parameter", soapRequest{contentType: ctSOAP12, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"no action, body decides", soapRequest{contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"empty SOAPAction, body decides", soapRequest{actions: []string{`""`}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"ws-addressing action", soapRequest{contentType: "application/soap+xml", body: []byte(soapEnvelope(`<a:Action xmlns:a="http://www.w3.org/2005/08/addressing">`+soapNS+`/ResetChatSession</a:Action>`, resetOp("831")))}, true, 831, nil},
	{"no content type", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp("831")))}, true, 831, nil},
	{"id with spaces and leading zeros", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp(" 0831 ")))}, true, 831, nil},
	{"other prefixes and a credentials header", soapRequest{actions: []string{soap11Action}, body: []byte(`<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Header><Credentials><Ticket>7T:x</Ticket></Credentials></env:Header><env:Body><r:ResetChatSession xmlns:r="` + soapNS + `"><r:ChatSessionId>5</r:ChatSessionId></r:ResetChatSession></env:Body></env:Envelope>`)}, true, 5, nil},
	{"lower-case operation element", soapRequest{body: []byte(soapEnvelope("", `<resetchatsession><chatsessionid>7</chatsessionid></resetchatsession>`))}, true, 7, nil},

	// Resets with a bad id: guarded and refused.
	{"id missing", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", `<ResetChatSession/>`))}, true, 0, errBadSessionID},
	{"id twice", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", `<ResetChatSession><ChatSessionId>1</ChatSessionId><ChatSessionId>2</ChatSessionId></ResetChatSession>`))}, true, 0, errBadSessionID},
	{"id not a number", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp("x")))}, true, 0, errBadSessionID},
	{"id zero", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp("0")))}, true, 0, errBadSessionID},
	{"id with markup", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp("<b>1</b>")))}, true, 0, errBadSessionID},
	{"second reset element", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp("1")+resetOp("2")))}, true, 0, errBadSessionID},

	// Other operations pass through.
	{"other operation", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, contentType: ctSOAP11, body: []byte(soapEnvelope("", getOp("831")))}, false, 0, nil},
	{"other operation, soap 1.2", soapRequest{contentType: `application/soap+xml; action="` + soapNS + `/GetChatSessionEntity"`, body: []byte(soapEnvelope("", getOp("831")))}, false, 0, nil},
	{"other operation, no action", soapRequest{contentType: ctSOAP11, body: []byte(soapEnvelope("", getOp("831")))}, false, 0, nil},
	{"ResetChatSessionX is another operation", soapRequest{actions: []string{soapAction("ResetChatSessionX")}, body: []byte(soapEnvelope("", `<ResetChatSessionX><ChatSessionId>1</ChatSessionId></ResetChatSessionX>`))}, false, 0, nil},

	// Ambiguity: refused.
	{"header other, body reset", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, contentType: ctSOAP11, body: []byte(soapEnvelope("", resetOp("831")))}, false, 0, errSOAPAmbiguous},
	{"header reset, body other", soapRequest{actions: []string{soap11Action}, contentType: ctSOAP11, body: []byte(soapEnvelope("", getOp("831")))}, false, 0, errSOAPAmbiguous},
	{"soap 1.2 parameter other, body reset", soapRequest{contentType: `application/soap+xml; action="` + soapNS + `/GetChatSessionEntity"`, body: []byte(soapEnvelope("", resetOp("831")))}, false, 0, errSOAPAmbiguous},
	{"SOAPAction and soap 1.2 parameter disagree", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, contentType: ctSOAP12, body: []byte(soapEnvelope("", getOp("1")))}, false, 0, errSOAPAmbiguous},
	{"ws-addressing other, body reset", soapRequest{body: []byte(soapEnvelope(`<Action>`+soapNS+`/GetChatSessionEntity</Action>`, resetOp("1")))}, false, 0, errSOAPAmbiguous},
	{"ws-addressing reset, header other", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, body: []byte(soapEnvelope(`<Action>`+soapNS+`/ResetChatSession</Action>`, getOp("1")))}, false, 0, errSOAPAmbiguous},
	{"reset hidden after another operation", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, body: []byte(soapEnvelope("", getOp("1")+resetOp("1")))}, false, 0, errSOAPAmbiguous},
	{"two SOAPAction headers", soapRequest{actions: []string{soapAction("GetChatSessionEntity"), soap11Action}, body: []byte(soapEnvelope("", getOp("1")))}, false, 0, errSOAPAmbiguous},
	{"path info names the reset, body other", soapRequest{pathInfo: []string{"resetchatsession"}, body: []byte(soapEnvelope("", getOp("1")))}, false, 0, errSOAPAmbiguous},

	// Undeterminable: refused.
	{"no action, empty body", soapRequest{contentType: ctSOAP11}, false, 0, errSOAPEnvelope},
	{"action other, empty body", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}}, false, 0, errSOAPEnvelope},
	{"action reset, not xml", soapRequest{actions: []string{soap11Action}, body: []byte(`{"ChatSessionId":1}`)}, false, 0, errSOAPEnvelope},
	{"no action, empty Body element", soapRequest{body: []byte(soapEnvelope("", ""))}, false, 0, errSOAPEnvelope},
	{"truncated envelope", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, body: []byte(soapEnvelope("", getOp("1"))[:60])}, false, 0, errSOAPEnvelope},
	{"root is not an envelope", soapRequest{body: []byte(resetOp("1"))}, false, 0, errSOAPEnvelope},
	{"two roots", soapRequest{body: []byte(soapEnvelope("", getOp("1")) + soapEnvelope("", resetOp("1")))}, false, 0, errSOAPEnvelope},
	{"two Body elements", soapRequest{body: []byte(`<Envelope><Body>` + getOp("1") + `</Body><Body>` + resetOp("1") + `</Body></Envelope>`)}, false, 0, errSOAPEnvelope},
	{"undefined entity", soapRequest{actions: []string{soap11Action}, body: []byte(soapEnvelope("", resetOp("&id;")))}, false, 0, errSOAPEnvelope},
	{"utf-16 declaration", soapRequest{actions: []string{soap11Action}, body: []byte(`<?xml version="1.0" encoding="utf-16"?>` + soapEnvelope("", resetOp("1"))[38:])}, false, 0, errSOAPEnvelope},
	{"malformed content type", soapRequest{contentType: `text/xml; action="a"; action="b"`, body: []byte(soapEnvelope("", getOp("1")))}, false, 0, errSOAPEnvelope},
	{"too deep", soapRequest{body: []byte(`<Envelope><Body>` + nest(100) + `</Body></Envelope>`)}, false, 0, errSOAPEnvelope},
	{"markup in the addressing action", soapRequest{body: []byte(soapEnvelope(`<Action><x/>ResetChatSession</Action>`, getOp("1")))}, false, 0, errSOAPEnvelope},

	// DTDs: refused.
	{"doctype", soapRequest{actions: []string{soap11Action}, body: []byte(`<?xml version="1.0"?><!DOCTYPE Envelope [<!ENTITY id "1">]>` + soapEnvelope("", resetOp("&id;"))[38:])}, false, 0, errXMLDTD},
	{"billion laughs", soapRequest{actions: []string{soapAction("GetChatSessionEntity")}, body: []byte(`<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><Envelope><Body><GetChatSessionEntity>&lol2;</GetChatSessionEntity></Body></Envelope>`)}, false, 0, errXMLDTD},
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
		soap11Action:               "ResetChatSession",
		`  "` + soapNS + `/X/" `:   "X",
		"urn:a:b#ResetChatSession": "ResetChatSession",
		`""`:                       "",
		"":                         "",
		"ResetChatSession":         "ResetChatSession",
		`'ResetChatSession'`:       "ResetChatSession",
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
	withHeader := func(h string) []byte { return []byte(soapEnvelope(h, resetOp("1"))) }
	cases := []struct {
		name        string
		body        []byte
		wantTicket  string
		wantPresent bool
		wantErr     error
	}{
		{"no header", withHeader(""), "", false, nil},
		{"header without credentials", withHeader(`<Action>x</Action>`), "", false, nil},
		{"one ticket", withHeader(`<Credentials xmlns="` + soapNS + `"><Ticket> 7T:dGlja2V0 </Ticket></Credentials>`), "7T:dGlja2V0", true, nil},
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
