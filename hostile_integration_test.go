package resetguard_test

// Hostile clients and upstreams against the real in-process Caddy: every
// request is written by hand on a raw TCP connection, so no Go client
// normalises the request line, the headers or the framing first.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	gatewayAddr  = "localhost:9080"
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

func TestHostileClients(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)

	denied := func(name, target string, headers []string, body string) rawCase {
		return rawCase{name: name, target: target, auth: "mallory", headers: headers, body: body, wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1}
	}
	json := []string{"Content-Type: application/json"}
	soap11 := []string{"Content-Type: text/xml; charset=utf-8", `SOAPAction: "` + soapNS + `/ResetChatSession"`}
	bigHeader := "X-Pad: " + strings.Repeat("a", 20<<10)
	deep := strings.Repeat(`{"a":`, 12000) + "1" + strings.Repeat("}", 12000)

	cases := []rawCase{
		// REST: every spelling is guarded and refused for a denied caller.
		denied("rest canonical", "/api/v1/ChatSession/427/Reset", nil, ""),
		denied("rest upper case", "/API/V1/CHATSESSION/427/RESET", nil, ""),
		denied("rest mixed case", "/Api/v1/chatSESSION/427/rEsEt", nil, ""),
		denied("rest encoded letter", "/api/v1/ChatSession/427/%52eset", nil, ""),
		denied("rest all encoded", "/%61%70%69/v1/%43hat%53ession/%34%32%37/%72%65%73%65%74", nil, ""),
		denied("rest %2F", "/api/v1/ChatSession/427%2FReset", nil, ""),
		denied("rest %2f lower", "/api%2fv1%2fChatSession%2f427%2fReset", nil, ""),
		denied("rest %5C", "/api/v1/ChatSession/427%5CReset", nil, ""),
		denied("rest raw backslash", `/api/v1/ChatSession/427\Reset`, nil, ""),
		denied("rest double encoded", "/api/v1/ChatSession/427%252FReset", nil, ""),
		denied("rest triple encoded", "/api/v1/ChatSession/427/%25252552eset", nil, ""),
		denied("rest long s", "/api/v1/ChatSession/427/Re%C5%BFet", nil, ""),
		denied("rest duplicate slashes", "//api//v1//ChatSession//427//Reset", nil, ""),
		denied("rest dot segments", "/api/v1/./x/../ChatSession/427/./Reset", nil, ""),
		denied("rest encoded dot segments", "/api/v1/x/%2E%2E/ChatSession/427/Reset", nil, ""),
		denied("rest pickup then dot-dot", "/api/v1/ChatSession/427/Pickup/../Reset", nil, ""),
		denied("rest trailing slash", "/api/v1/ChatSession/427/Reset/", nil, ""),
		denied("rest trailing dot", "/api/v1/ChatSession/427/Reset.", nil, ""),
		denied("rest trailing encoded space", "/api/v1/ChatSession/427/Reset%20", nil, ""),
		denied("rest path parameter", "/api/v1/ChatSession/427/Reset;jsessionid=1", nil, ""),
		denied("rest encoded path parameter", "/api/v1/ChatSession/427/Reset%3Bx", nil, ""),
		denied("rest query string", "/api/v1/ChatSession/427/Reset?x=1&$select=Status", nil, ""),
		denied("rest absolute form", "http://"+gatewayAddr+"/api/v1/ChatSession/427/Reset", nil, ""),
		denied("rest onsite prefix", "/SuperOffice/api/v1/ChatSession/427/Reset", nil, ""),
		denied("rest tenant prefix", "/Cust12345/api/v1/ChatSession/427/Reset", nil, ""),
		denied("rest deep prefix", "/a/b/c/api/v2/ChatSession/427/Reset", nil, ""),
		denied("rest invalid UTF-8 in the path", "/api/v1/\xff\xfe/../ChatSession/427/Reset", nil, ""),
		denied("rest invalid UTF-8 in a header", "/api/v1/ChatSession/427/Reset", []string{"X-Junk: \xff\xfe\xfd"}, ""),
		{name: "rest without credentials", target: "/api/v1/ChatSession/427/Reset%2F", wantStatus: 401, wantReason: "missing_credentials", wantAudit: 1},
		{name: "rest many Authorization headers", target: "/api/v1/ChatSession/427/Reset", auth: "mallory",
			headers: []string{"Authorization: " + basic("bot", "pw"), "Authorization: " + basic("bot", "pw")}, wantStatus: 401, wantReason: "duplicate_authorization", wantAudit: 1},
		{name: "rest Authorization with invalid UTF-8", target: "/api/v1/ChatSession/427/Reset", auth: "Authorization: Basic \xff\xfe", wantStatus: 401, wantReason: "malformed_authorization", wantAudit: 1},
		{name: "rest by GET", method: "GET", target: "/api/v1/chatsession/427/reset", auth: "bot", wantStatus: 405, wantReason: "method_not_allowed", wantAudit: 1},
		{name: "rest method override", target: "/api/v1/ChatSession/427/Reset", auth: "bot", headers: []string{"X-HTTP-Method-Override: PUT"}, wantStatus: 400, wantReason: "method_override_refused", wantAudit: 1},

		// Agents: the id in every body format.
		denied("agents json", "/api/v1/Agents/Chat/ResetChatSession", json, `{"ChatSessionId":427}`),
		denied("agents json with $select", "/api/v1/Agents/Chat/ResetChatSession?$select=Status", json, `{"chatsessionid":"427"}`),
		denied("agents xml", "/API/V1/agents/chat/RESETCHATSESSION", []string{"Content-Type: application/xml"}, `<ResetChatSession><ChatSessionId>427</ChatSessionId></ResetChatSession>`),
		denied("agents form", "/Cust12345/api/v1/Agents/Chat/ResetChatSession", []string{"Content-Type: application/x-www-form-urlencoded"}, `ChatSessionId=427`),
		denied("agents sniffed", "/api/v1/Agents%2FChat%2FResetChatSession", nil, `{"ChatSessionId":427}`),
		{name: "agents chunked", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Transfer-Encoding: chunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1},
		{name: "agents id also in the query", target: "/api/v1/Agents/Chat/ResetChatSession?ChatSessionId=666", auth: "bot", headers: json,
			body: `{"ChatSessionId":427}`, wantStatus: 400, wantReason: "bad_session_id", wantAudit: 1},
		// Go's server lets chunked win and drops the Content-Length, so
		// the guard reads the chunked body.
		{name: "agents content-length and chunked", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1},
		{name: "agents body past max_request_body", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			body: `{"ChatSessionId":427,"p":"` + strings.Repeat("x", 70<<10) + `"}`, wantStatus: 413, wantReason: "request_body_too_large", wantAudit: 1},
		{name: "agents chunked body past max_request_body", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Transfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 70<<10, strings.Repeat("x", 70<<10)), wantStatus: 413, wantReason: "request_body_too_large", wantAudit: 1},
		{name: "agents deeply nested json", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			body: `{"x":` + deep[:60000] + `}`, wantStatus: 400, wantReason: "bad_session_id", wantAudit: 1},
		{name: "agents xml with a DTD", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: []string{"Content-Type: text/xml"},
			body: `<!DOCTYPE r [<!ENTITY id "427">]><ResetChatSession><ChatSessionId>&id;</ChatSessionId></ResetChatSession>`, wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: 1},
		{name: "agents body declared but not sent", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Content-Length: 100\r\n\r\n{\"ChatSe", wantStatus: 408, wantReason: "request_body_timeout", wantAudit: 1},

		// SOAP.
		denied("soap 1.1", "/Remote/Services88/Chat.svc", soap11, soapReset("427")),
		denied("soap 1.1 spelled oddly", "/superoffice/REMOTE/services88//x/../Chat%2Esvc/", soap11, soapReset("427")),
		denied("soap 1.2 action parameter", "/Cust12345/Remote/Services88/Chat.svc", []string{`Content-Type: application/soap+xml; charset=utf-8; action="` + soapNS + `/ResetChatSession"`}, soapReset("427")),
		denied("soap no action header", "/Remote/Services88/Chat.svc", []string{"Content-Type: text/xml"}, soapReset("427")),
		{name: "soap chunked", target: "/Remote/Services88/Chat.svc?x=1", auth: "mallory", headers: soap11,
			framing: "Transfer-Encoding: chunked\r\n\r\n" + chunked(soapReset("427")), wantStatus: 403, wantReason: "mallory_refused", wantAudit: 1},
		denied("soap ws-addressing action", "/Remote/Services88/Chat.svc", []string{"Content-Type: application/soap+xml"},
			`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">`+soapNS+`/ResetChatSession</a:Action></s:Header><s:Body><ResetChatSession xmlns="`+soapNS+`"><ChatSessionId>427</ChatSessionId></ResetChatSession></s:Body></s:Envelope>`),
		denied("soap path info", "/Remote/Services88/Chat.svc/ResetChatSession", []string{"Content-Type: text/xml"}, soapReset("427")),
		denied("soap 8.3 short name", "/Remote/Services88/CHAT~1.SVC", soap11, soapReset("427")),
		denied("soap action in another case, unquoted", "/Remote/Services88/Chat.svc", []string{"Content-Type: text/xml", "soapaction: " + soapNS + "/resetCHATsession"}, soapReset("427")),
		{name: "soap two SOAPAction headers", target: "/Remote/Services88/Chat.svc", auth: "bot",
			headers: []string{"Content-Type: text/xml", `SOAPAction: "` + soapNS + `/GetChatSessionEntity"`, `SOAPAction: "` + soapNS + `/ResetChatSession"`}, body: soapReset("427"), wantStatus: 400, wantReason: "soap_action_ambiguous", wantAudit: 1},
		// A caller the policy allows in the header, someone else's ticket
		// in the envelope the backend authenticates: refused.
		{name: "soap allowed header, other ticket in the envelope", target: "/Remote/Services88/Chat.svc", auth: "bot", headers: soap11,
			body:       `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><Credentials xmlns="` + soapNS + `"><Ticket>7T:bWFsbG9yeQ==</Ticket></Credentials></s:Header><s:Body><ResetChatSession xmlns="` + soapNS + `"><ChatSessionId>427</ChatSessionId></ResetChatSession></s:Body></s:Envelope>`,
			wantStatus: 401, wantReason: "duplicate_authorization", wantAudit: 1},
		{name: "soap without credentials", target: "/Remote/Services88/Chat.svc", headers: soap11, body: soapReset("427"), wantStatus: 401, wantReason: "missing_credentials", wantAudit: 1},
		{name: "soap header other, body reset", target: "/Remote/Services88/Chat.svc", auth: "bot",
			headers: []string{"Content-Type: text/xml", `SOAPAction: "` + soapNS + `/GetChatSessionEntity"`}, body: soapReset("427"), wantStatus: 400, wantReason: "soap_action_ambiguous", wantAudit: 1},
		{name: "soap no action, unparseable body", target: "/Remote/Services88/Chat.svc", auth: "bot", headers: []string{"Content-Type: text/xml"},
			body: "<s:Envelope", wantStatus: 400, wantReason: "soap_envelope_invalid", wantAudit: 1},
		{name: "soap entity expansion", target: "/Remote/Services88/Chat.svc", auth: "bot", headers: soap11,
			body: `<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>` + soapReset("&b;"), wantStatus: 400, wantReason: "xml_dtd_refused", wantAudit: 1},
		{name: "soap body declared but not sent", target: "/Remote/Services88/Chat.svc", auth: "bot", headers: soap11,
			framing: "Content-Length: 500\r\n\r\n<s:Envelope", wantStatus: 408, wantReason: "request_body_timeout", wantAudit: 1},
		{name: "soap other operation passes", target: "/Remote/Services88/Chat.svc", auth: "bot",
			headers: []string{"Content-Type: text/xml", `SOAPAction: "` + soapNS + `/GetChatSessionEntity"`},
			body:    soapEnvStart + `<GetChatSessionEntity xmlns="` + soapNS + `"><ChatSessionEntityId>427</ChatSessionEntityId></GetChatSessionEntity>` + soapEnvEnd, wantStatus: 200, wantForwarded: true},
		{name: "soap WSDL passes", method: "GET", target: "/Remote/Services88/Chat.svc?wsdl", wantStatus: 200, wantForwarded: true},

		// Framing tricks: refused by Go's HTTP server before any handler,
		// so nothing is forwarded and nothing is audited.
		// IIS decodes %uXXXX; Go's server refuses it as an invalid escape
		// before any handler (route_test.go covers the guard's decoding).
		{name: "IIS %u escape", target: "/api/v1/ChatSession/427/%u0052eset", auth: "mallory", wantStatus: 400},
		{name: "two content-lengths", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Content-Length: 21\r\nContent-Length: 5\r\n\r\n{\"ChatSessionId\":427}", wantStatus: 400},
		{name: "unknown transfer coding", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 501},
		{name: "obfuscated transfer-encoding", target: "/api/v1/Agents/Chat/ResetChatSession", auth: "mallory", headers: json,
			framing: "Transfer-Encoding: xchunked\r\n\r\n" + chunked(`{"ChatSessionId":427}`), wantStatus: 501},
		{name: "header block past max_header_size", target: "/api/v1/ChatSession/427/Reset", auth: "mallory", headers: []string{bigHeader}, wantStatus: 431},
		{name: "control byte in the path", target: "/api/v1/ChatSession/427/Reset\x01", auth: "mallory", wantStatus: 400},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caseID := "hostile-" + strconv.Itoa(i)
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
		})
	}
	// Whatever each case asserted, no reset of any spelling reached the
	// backend from these cases.
	for i, tc := range cases {
		for _, r := range g.backend.requests("hostile-" + strconv.Itoa(i)) {
			if !tc.wantForwarded {
				t.Errorf("case %q: the backend received %s %s", tc.name, r.Method, r.Path)
			}
		}
	}
}
