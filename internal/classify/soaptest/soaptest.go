// Package soaptest builds the SOAP messages of SuperOffice's Chat service
// for tests: the classification tests and the handler tests that send
// Chat.svc calls through the guard share one spelling of them.
package soaptest

// NS is the Services88 namespace of the Chat service's operations.
const NS = "http://www.superoffice.net/ws/crm/NetServer/Services88"

// Content types of SOAP 1.1 and of SOAP 1.2, which carries the action as
// a media-type parameter (here ResetChatSession's).
const (
	ContentType11 = "text/xml; charset=utf-8"
	ContentType12 = `application/soap+xml; charset=utf-8; action="` + NS + `/ResetChatSession"`
)

// ResetAction is the SOAP 1.1 SOAPAction header value of
// ResetChatSession, quoted as SOAP 1.1 clients send it.
const ResetAction = `"` + NS + `/ResetChatSession"`

// Action is the quoted SOAPAction header value of the operation op.
func Action(op string) string { return `"` + NS + "/" + op + `"` }

// Envelope wraps a Body payload (and, when header is not "", a Header) in
// a SOAP 1.1 envelope with an XML declaration.
func Envelope(header, body string) string {
	h := ""
	if header != "" {
		h = "<s:Header>" + header + "</s:Header>"
	}
	return `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">` + h + "<s:Body>" + body + "</s:Body></s:Envelope>"
}

// Reset is a ResetChatSession operation element with id as its
// ChatSessionId text, as given (it may be malformed on purpose).
func Reset(id string) string {
	return `<ResetChatSession xmlns="` + NS + `"><ChatSessionId>` + id + `</ChatSessionId></ResetChatSession>`
}

// Get is a GetChatSessionEntity operation element: another operation of
// the Chat service, which the guard passes through.
func Get(id string) string {
	return `<GetChatSessionEntity xmlns="` + NS + `"><ChatSessionEntityId>` + id + `</ChatSessionEntityId></GetChatSessionEntity>`
}
