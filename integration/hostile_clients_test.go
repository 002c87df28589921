package integration_test

// Hostile clients against the real in-process Caddy: every request is
// written by hand on a raw TCP connection, so no Go client normalises the
// request line, the headers or the framing first.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	soapNS       = "http://www.superoffice.net/ws/crm/NetServer/Services88"
	soapEnvStart = `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>`
	soapEnvEnd   = `</s:Body></s:Envelope>`
)

func soapReset(id string) string {
	return soapEnvStart + `<ResetChatSession xmlns="` + soapNS + `"><ChatSessionId>` + id + `</ChatSessionId></ResetChatSession>` + soapEnvEnd
}

// rawExchange writes raw on a new connection to the gateway and reads one
// response within readFor.
func rawExchange(t *testing.T, raw string, readFor time.Duration) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", gatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(readFor)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp, body
}

// rawCase is a request line, extra header lines and a body; the framing
// (Host, Content-Length, X-Test-Case) is added unless the case writes it.
type rawCase struct {
	name   string
	target string // request target, as sent
	method string
	// auth: "mallory" (a credential the policy denies), "" (none),
	// "bot" (allowed, for upstream cases), or a full header line.
	auth    string
	headers []string
	body    string
	// framing replaces the Content-Length header the case would get.
	framing string

	wantStatus    int
	wantReason    string
	wantAudit     int // records the request must produce: 0 or 1
	wantForwarded bool
}

func (c rawCase) request(tc string) string {
	var b strings.Builder
	method := c.method
	if method == "" {
		method = "POST"
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Test-Case: %s\r\nConnection: close\r\n", method, c.target, gatewayAddr, tc)
	switch c.auth {
	case "":
	case "mallory", "bot":
		b.WriteString("Authorization: " + basic(c.auth, "pw") + "\r\n")
	default:
		b.WriteString(c.auth + "\r\n")
	}
	for _, h := range c.headers {
		b.WriteString(h + "\r\n")
	}
	if c.framing != "" {
		b.WriteString(c.framing)
	} else {
		b.WriteString("Content-Length: " + strconv.Itoa(len(c.body)) + "\r\n\r\n" + c.body)
	}
	return b.String()
}

func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(7, len(body))
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// deniedRaw is a reset the guard must recognise, from a caller the policy
// denies: a 403 with the policy's reason proves it was guarded.
func deniedRaw(name, target string, headers []string, body string) rawCase {
	return rawCase{name: name, target: target, auth: "mallory", headers: headers, body: body, wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1}
}

var (
	jsonType = []string{"Content-Type: application/json"}
	soap11   = []string{"Content-Type: text/xml; charset=utf-8", `SOAPAction: "` + soapNS + `/ResetChatSession"`}
)

// hostileSeq numbers raw cases across the suites, for X-Test-Case.
var hostileSeq atomic.Int64

// runRawCases sends each case on its own connection and checks status,
// reason, forwarding and the one record; then that no case the guard
// should have stopped reached the backend.
func runRawCases(t *testing.T, cases []rawCase) {
	t.Helper()
	g := startGateway(t)
	g.newAuditLines(t)
	ids := make([]string, len(cases))
	for i, tc := range cases {
		ids[i] = "hostile-" + strconv.FormatInt(hostileSeq.Add(1), 10)
		t.Run(tc.name, func(t *testing.T) { tc.run(t, g, ids[i]) })
	}
	// Whatever each case asserted, no reset of any spelling reached the
	// backend from these cases.
	for i, tc := range cases {
		for _, r := range g.backend.requests(ids[i]) {
			if !tc.wantForwarded {
				t.Errorf("case %q: the backend received %s %s", tc.name, r.Method, r.Path)
			}
		}
	}
}

func (tc rawCase) run(t *testing.T, g *gateway, caseID string) {
	resp, body := rawExchange(t, tc.request(caseID), 10*time.Second)
	if resp.StatusCode != tc.wantStatus {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
	}
	if tc.wantReason != "" && !bytes.Contains(body, []byte(`"Reasons":["`+tc.wantReason+`"`)) {
		t.Errorf("body %s does not give reason %s", body, tc.wantReason)
	}
	got := g.backend.requests(caseID)
	if tc.wantForwarded != (len(got) > 0) {
		t.Errorf("backend received %d requests, want forwarded=%v", len(got), tc.wantForwarded)
	}
	records := g.newAuditLines(t)
	if len(records) != tc.wantAudit {
		t.Fatalf("%d audit records, want %d", len(records), tc.wantAudit)
	}
	if tc.wantAudit == 1 {
		rec := records[0]
		if r := field(rec, "event.reason"); tc.wantReason != "" && r != tc.wantReason {
			t.Errorf("audit event.reason = %v, want %s", r, tc.wantReason)
		}
		if field(rec, "resetguard.decision.allow") == true || field(rec, "resetguard.upstream") != nil {
			t.Errorf("a refused request is recorded as forwarded: %s", rec["_raw"])
		}
		if strings.Contains(tc.target, "svc") && field(rec, "resetguard.route") != "soap" {
			t.Errorf("audit route = %v, want soap", field(rec, "resetguard.route"))
		}
	}
}

// TestHostileRESTSpellings: every spelling of the REST route is guarded
// and refused for a denied caller.
func TestHostileRESTSpellings(t *testing.T) {
	runRawCases(t, []rawCase{
		deniedRaw("rest canonical", "/api/v1/ChatSession/427/Reset", nil, ""),
		deniedRaw("rest upper case", "/API/V1/CHATSESSION/427/RESET", nil, ""),
		deniedRaw("rest mixed case", "/Api/v1/chatSESSION/427/rEsEt", nil, ""),
		deniedRaw("rest encoded letter", "/api/v1/ChatSession/427/%52eset", nil, ""),
		deniedRaw("rest all encoded", "/%61%70%69/v1/%43hat%53ession/%34%32%37/%72%65%73%65%74", nil, ""),
		deniedRaw("rest %2F", "/api/v1/ChatSession/427%2FReset", nil, ""),
		deniedRaw("rest %2f lower", "/api%2fv1%2fChatSession%2f427%2fReset", nil, ""),
		deniedRaw("rest %5C", "/api/v1/ChatSession/427%5CReset", nil, ""),
		deniedRaw("rest raw backslash", `/api/v1/ChatSession/427\Reset`, nil, ""),
		deniedRaw("rest double encoded", "/api/v1/ChatSession/427%252FReset", nil, ""),
		deniedRaw("rest triple encoded", "/api/v1/ChatSession/427/%25252552eset", nil, ""),
		deniedRaw("rest long s", "/api/v1/ChatSession/427/Re%C5%BFet", nil, ""),
		deniedRaw("rest duplicate slashes", "//api//v1//ChatSession//427//Reset", nil, ""),
		deniedRaw("rest dot segments", "/api/v1/./x/../ChatSession/427/./Reset", nil, ""),
		deniedRaw("rest encoded dot segments", "/api/v1/x/%2E%2E/ChatSession/427/Reset", nil, ""),
		deniedRaw("rest pickup then dot-dot", "/api/v1/ChatSession/427/Pickup/../Reset", nil, ""),
		deniedRaw("rest trailing slash", "/api/v1/ChatSession/427/Reset/", nil, ""),
		deniedRaw("rest trailing dot", "/api/v1/ChatSession/427/Reset.", nil, ""),
		deniedRaw("rest trailing encoded space", "/api/v1/ChatSession/427/Reset%20", nil, ""),
		deniedRaw("rest path parameter", "/api/v1/ChatSession/427/Reset;jsessionid=1", nil, ""),
		deniedRaw("rest encoded path parameter", "/api/v1/ChatSession/427/Reset%3Bx", nil, ""),
		deniedRaw("rest query string", "/api/v1/ChatSession/427/Reset?x=1&$select=Status", nil, ""),
		deniedRaw("rest absolute form", "http://"+gatewayAddr+"/api/v1/ChatSession/427/Reset", nil, ""),
		deniedRaw("rest onsite prefix", "/SuperOffice/api/v1/ChatSession/427/Reset", nil, ""),
		deniedRaw("rest tenant prefix", "/Cust12345/api/v1/ChatSession/427/Reset", nil, ""),
		deniedRaw("rest deep prefix", "/a/b/c/api/v2/ChatSession/427/Reset", nil, ""),
		deniedRaw("rest invalid UTF-8 in the path", "/api/v1/\xff\xfe/../ChatSession/427/Reset", nil, ""),
		deniedRaw("rest invalid UTF-8 in a header", "/api/v1/ChatSession/427/Reset", []string{"X-Junk: \xff\xfe\xfd"}, ""),
	})
}

// TestHostileRESTCredentialsAndMethods: on the REST route, a missing,
// duplicated or unreadable credential and a wrong or overridden method
// are refused before the policy.
func TestHostileRESTCredentialsAndMethods(t *testing.T) {
	runRawCases(t, []rawCase{
		{name: "rest without credentials", target: "/api/v1/ChatSession/427/Reset%2F", wantStatus: 401, wantReason: "missing_credentials", wantAudit: 1},
		{name: "rest many Authorization headers", target: "/api/v1/ChatSession/427/Reset", auth: "mallory",
			headers: []string{"Authorization: " + basic("bot", "pw"), "Authorization: " + basic("bot", "pw")}, wantStatus: 401, wantReason: "duplicate_authorization", wantAudit: 1},
		{name: "rest Authorization with invalid UTF-8", target: "/api/v1/ChatSession/427/Reset", auth: "Authorization: Basic \xff\xfe", wantStatus: 401, wantReason: "malformed_authorization", wantAudit: 1},
		{name: "rest by GET", method: "GET", target: "/api/v1/chatsession/427/reset", auth: "bot", wantStatus: 405, wantReason: "method_not_allowed", wantAudit: 1},
		{name: "rest method override", target: "/api/v1/ChatSession/427/Reset", auth: "bot", headers: []string{"X-HTTP-Method-Override: PUT"}, wantStatus: 400, wantReason: "method_override_refused", wantAudit: 1},
	})
}

// TestHostileAgentsBodies: the Agents route's id in every body format and
// framing, and the bodies the guard refuses to read.
func TestHostileAgentsBodies(t *testing.T) {
	const agents = "/api/v1/Agents/Chat/ResetChatSession"
	deep := strings.Repeat(`{"a":`, 12000) + "1" + strings.Repeat("}", 12000)
	runRawCases(t, []rawCase{
		deniedRaw("agents json", agents, jsonType, `{"ChatSessionId":427}`),
		deniedRaw("agents json with $select", agents+"?$select=Status", jsonType, `{"chatsessionid":"427"}`),
		deniedRaw("agents xml", "/API/V1/agents/chat/RESETCHATSESSION", []string{"Content-Type: application/xml"}, `<ResetChatSession><ChatSessionId>427</ChatSessionId></ResetChatSession>`),
		deniedRaw("agents form", "/Cust12345"+agents, []string{"Content-Type: application/x-www-form-urlencoded"}, `ChatSessionId=427`),
		deniedRaw("agents sniffed", "/api/v1/Agents%2FChat%2FResetChatSession", nil, `{"ChatSessionId":427}`),
		{name: "agents chunked", target: agents, auth: "mallory", headers: jsonType,
			framing: "Transfer-Encoding: chunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1},
		{name: "agents id also in the query", target: agents + "?ChatSessionId=666", auth: "bot", headers: jsonType,
			body: `{"ChatSessionId":427}`, wantStatus: 400, wantReason: "session_id_ambiguous", wantAudit: 1},
		// Go's server lets chunked win and drops the Content-Length, so
		// the guard reads the chunked body.
		{name: "agents content-length and chunked", target: agents, auth: "mallory", headers: jsonType,
			framing: "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1},
		{name: "agents body past max_request_body", target: agents, auth: "mallory", headers: jsonType,
			body: `{"ChatSessionId":427,"p":"` + strings.Repeat("x", 70<<10) + `"}`, wantStatus: 413, wantReason: "request_body_too_large", wantAudit: 1},
		{name: "agents chunked body past max_request_body", target: agents, auth: "mallory", headers: jsonType,
			framing: "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 70<<10, strings.Repeat("x", 70<<10)), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: 1},
		{name: "agents deeply nested json", target: agents, auth: "mallory", headers: jsonType,
			body: `{"x":` + deep[:60000] + `}`, wantStatus: 400, wantReason: "bad_session_id", wantAudit: 1},
		{name: "agents xml with a DTD", target: agents, auth: "mallory", headers: []string{"Content-Type: text/xml"},
			body: `<!DOCTYPE r [<!ENTITY id "427">]><ResetChatSession><ChatSessionId>&id;</ChatSessionId></ResetChatSession>`, wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: 1},
		{name: "agents body declared but not sent", target: agents, auth: "mallory", headers: jsonType,
			framing: "Content-Length: 100\r\n\r\n{\"ChatSe", wantStatus: 408, wantReason: "request_body_timeout", wantAudit: 1},
	})
}

// TestHostileSOAP: every way WCF may name the operation is read, sources
// that disagree or cannot be read are refused, and other operations pass.
func TestHostileSOAP(t *testing.T) {
	const chat = "/Remote/Services88/Chat.svc"
	envelopeTicket := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><Credentials xmlns="` + soapNS + `"><Ticket>7T:bWFsbG9yeQ==</Ticket></Credentials></s:Header><s:Body><ResetChatSession xmlns="` + soapNS + `"><ChatSessionId>427</ChatSessionId></ResetChatSession></s:Body></s:Envelope>`
	wsAddressing := `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">` + soapNS + `/ResetChatSession</a:Action></s:Header><s:Body><ResetChatSession xmlns="` + soapNS + `"><ChatSessionId>427</ChatSessionId></ResetChatSession></s:Body></s:Envelope>`
	otherAction := []string{"Content-Type: text/xml", `SOAPAction: "` + soapNS + `/GetChatSessionEntity"`}
	runRawCases(t, []rawCase{
		deniedRaw("soap 1.1", chat, soap11, soapReset("427")),
		deniedRaw("soap 1.1 spelled oddly", "/superoffice/REMOTE/services88//x/../Chat%2Esvc/", soap11, soapReset("427")),
		deniedRaw("soap 1.2 action parameter", "/Cust12345"+chat, []string{`Content-Type: application/soap+xml; charset=utf-8; action="` + soapNS + `/ResetChatSession"`}, soapReset("427")),
		deniedRaw("soap no action header", chat, []string{"Content-Type: text/xml"}, soapReset("427")),
		{name: "soap chunked", target: chat + "?x=1", auth: "mallory", headers: soap11,
			framing: "Transfer-Encoding: chunked\r\n\r\n" + chunked(soapReset("427")), wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1},
		deniedRaw("soap ws-addressing action", chat, []string{"Content-Type: application/soap+xml"}, wsAddressing),
		deniedRaw("soap path info", chat+"/ResetChatSession", []string{"Content-Type: text/xml"}, soapReset("427")),
		deniedRaw("soap 8.3 short name", "/Remote/Services88/CHAT~1.SVC", soap11, soapReset("427")),
		deniedRaw("soap action in another case, unquoted", chat, []string{"Content-Type: text/xml", "soapaction: " + soapNS + "/resetCHATsession"}, soapReset("427")),
		{name: "soap two SOAPAction headers", target: chat, auth: "bot",
			headers: []string{otherAction[0], otherAction[1], `SOAPAction: "` + soapNS + `/ResetChatSession"`}, body: soapReset("427"), wantStatus: 400, wantReason: "soap_action_ambiguous", wantAudit: 1},
		// A caller the policy allows in the header, someone else's ticket
		// in the envelope the backend authenticates: refused.
		{name: "soap allowed header, other ticket in the envelope", target: chat, auth: "bot", headers: soap11,
			body: envelopeTicket, wantStatus: 401, wantReason: "duplicate_authorization", wantAudit: 1},
		{name: "soap without credentials", target: chat, headers: soap11, body: soapReset("427"), wantStatus: 401, wantReason: "missing_credentials", wantAudit: 1},
		{name: "soap header other, body reset", target: chat, auth: "bot",
			headers: otherAction, body: soapReset("427"), wantStatus: 400, wantReason: "soap_action_ambiguous", wantAudit: 1},
		{name: "soap no action, unparseable body", target: chat, auth: "bot", headers: []string{"Content-Type: text/xml"},
			body: "<s:Envelope", wantStatus: 400, wantReason: "soap_envelope_invalid", wantAudit: 1},
		{name: "soap entity expansion", target: chat, auth: "bot", headers: soap11,
			body: `<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>` + soapReset("&b;"), wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: 1},
		{name: "soap body declared but not sent", target: chat, auth: "bot", headers: soap11,
			framing: "Content-Length: 500\r\n\r\n<s:Envelope", wantStatus: 408, wantReason: "request_body_timeout", wantAudit: 1},
		{name: "soap other operation passes", target: chat, auth: "bot", headers: otherAction,
			body: soapEnvStart + `<GetChatSessionEntity xmlns="` + soapNS + `"><ChatSessionEntityId>427</ChatSessionEntityId></GetChatSessionEntity>` + soapEnvEnd, wantStatus: 200, wantForwarded: true},
		{name: "soap WSDL passes", method: "GET", target: chat + "?wsdl", wantStatus: 200, wantForwarded: true},
	})
}

// TestHostileFraming: framing tricks are refused by Go's HTTP server
// before any handler, so nothing is forwarded and nothing is audited.
func TestHostileFraming(t *testing.T) {
	const agents = "/api/v1/Agents/Chat/ResetChatSession"
	runRawCases(t, []rawCase{
		// IIS decodes %uXXXX; Go's server refuses it as an invalid escape
		// before any handler (the classification unit tests cover the
		// guard's own decoding of it).
		{name: "IIS %u escape", target: "/api/v1/ChatSession/427/%u0052eset", auth: "mallory", wantStatus: 400},
		{name: "two content-lengths", target: agents, auth: "mallory", headers: jsonType,
			framing: "Content-Length: 21\r\nContent-Length: 5\r\n\r\n{\"ChatSessionId\":427}", wantStatus: 400},
		{name: "unknown transfer coding", target: agents, auth: "mallory", headers: jsonType,
			framing: "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 501},
		{name: "obfuscated transfer-encoding", target: agents, auth: "mallory", headers: jsonType,
			framing: "Transfer-Encoding: xchunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 501},
		{name: "header block past max_header_size", target: restReset, auth: "mallory", headers: []string{"X-Pad: " + strings.Repeat("a", 20<<10)}, wantStatus: 431},
		{name: "control byte in the path", target: "/api/v1/ChatSession/427/Reset\x01", auth: "mallory", wantStatus: 400},
	})
}
