package resetguard

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// soapResetOperation is the Chat service operation that resets a session.
const soapResetOperation = "resetchatsession"

// maxSOAPDepth bounds element nesting in an envelope: a ResetChatSession
// call is four levels deep, and a deeper document is refused instead of
// walked.
const maxSOAPDepth = 64

// Errors of SOAP classification. Each makes the request a refused one:
// a Chat.svc call whose operation is not certain is never forwarded.
var (
	// errSOAPAmbiguous: the action sources (SOAPAction header, the
	// action media-type parameter, a WS-Addressing Action, WCF path
	// info, the first element of the Body) do not agree about a reset.
	errSOAPAmbiguous = errors.New("soap: the action headers and the envelope disagree about ResetChatSession")
	// errSOAPEnvelope: the body is not one well-formed SOAP envelope, or
	// nothing names an operation.
	errSOAPEnvelope = errors.New("soap: the request is not a SOAP envelope with a determinable operation")
	// errXMLDTD: document type declarations are refused outright: they
	// are the vehicle of entity expansion and external entity attacks,
	// and WCF itself prohibits them.
	errXMLDTD = errors.New("xml: DTDs and entity declarations are refused")
)

// soapRequest is what the guard knows of a request on the Chat.svc path.
type soapRequest struct {
	// actions are the SOAPAction header values as sent.
	actions []string
	// contentType is the Content-Type header (SOAP 1.2 carries the
	// action as its action parameter).
	contentType string
	// pathInfo is the normalised path after the .svc segment; WCF
	// matches it to an endpoint address.
	pathInfo []string
	body     []byte
}

// classifySOAP decides whether a Chat.svc request is a ResetChatSession
// call. It returns reset=false and no error only when every source of
// the operation agrees that it is something else; then the request
// passes through. A reset returns its ChatSessionId, or errBadSessionID
// when the envelope holds none or several. Any doubt is an error.
func classifySOAP(req soapRequest) (reset bool, id int32, err error) {
	var claims []string
	switch len(req.actions) {
	case 0:
	case 1:
		if a := actionOperation(req.actions[0]); a != "" {
			claims = append(claims, a)
		}
	default:
		// Which copy the backend honours is not ours to guess.
		return false, 0, fmt.Errorf("%w: %d SOAPAction headers", errSOAPAmbiguous, len(req.actions))
	}
	if req.contentType != "" {
		_, params, perr := mime.ParseMediaType(req.contentType)
		if perr != nil {
			return false, 0, fmt.Errorf("%w: content type: %v", errSOAPEnvelope, perr)
		}
		if a := actionOperation(params["action"]); a != "" {
			claims = append(claims, a)
		}
	}
	for _, s := range req.pathInfo {
		if strings.EqualFold(s, soapResetOperation) {
			claims = append(claims, soapResetOperation)
		}
	}
	env, perr := parseEnvelope(req.body)
	if perr != nil {
		return false, 0, perr
	}
	claims = append(claims, env.wsaActions...)

	resetClaimed, otherClaimed := false, false
	for _, c := range claims {
		if strings.EqualFold(c, soapResetOperation) {
			resetClaimed = true
		} else {
			otherClaimed = true
		}
	}
	bodyReset := strings.EqualFold(env.operation, soapResetOperation)
	switch {
	case env.laterReset && !bodyReset:
		// WCF reads the first Body child; a reset hidden behind another
		// operation is not something a legitimate client sends.
		return false, 0, fmt.Errorf("%w: ResetChatSession is not the first element of the Body", errSOAPAmbiguous)
	case resetClaimed || bodyReset:
		if otherClaimed || !bodyReset {
			return false, 0, errSOAPAmbiguous
		}
		raw, err := oneID(env.id, env.ids)
		if err != nil {
			return true, 0, fmt.Errorf("%w: %v", errBadSessionID, err)
		}
		if env.idHasMarkup {
			return true, 0, errBadSessionID
		}
		id, err := parseSessionID(strings.TrimSpace(raw))
		return true, id, err
	case len(claims) == 0 && env.operation == "":
		return false, 0, fmt.Errorf("%w: no action header and an empty Body", errSOAPEnvelope)
	}
	return false, 0, nil
}

// actionOperation returns the last element of a SOAP action URI
// ("http://…/Services88/ResetChatSession" → "ResetChatSession"), without
// the quotes SOAP 1.1 puts around it. Splitting at ':' and '#' as well
// covers URN and fragment styles of action names.
func actionOperation(action string) string {
	a := strings.TrimSpace(action)
	a = strings.Trim(a, `"'`)
	a = strings.TrimRight(strings.TrimSpace(a), "/")
	if i := strings.LastIndexAny(a, "/:#"); i >= 0 {
		a = a[i+1:]
	}
	return strings.TrimSpace(a)
}

// envelope is what parseEnvelope learns from a SOAP message.
type envelope struct {
	// operation is the local name of the first element in the Body.
	operation string
	// laterReset: a later Body child is ResetChatSession.
	laterReset bool
	// wsaActions are the operations named by Action elements of the
	// SOAP Header (WS-Addressing), which WCF dispatches on when present.
	wsaActions []string
	// id and ids: the text of the ChatSessionId elements inside the
	// operation element, and how many there were.
	id          string
	ids         int
	idHasMarkup bool
	// credentials counts Credentials elements in the SOAP Header;
	// tickets and ticket hold their Ticket children. otherCredential:
	// Credentials holds something else (a user name, a password).
	credentials     int
	tickets         int
	ticket          string
	otherCredential bool
}

// parseEnvelope walks a SOAP 1.1 or 1.2 envelope with encoding/xml in
// strict mode (no entity definitions, only the predefined entities).
// Namespaces are not checked, so a prefix or namespace trick cannot hide
// an element; names compare case-insensitively, which errs toward
// guarding.
func parseEnvelope(body []byte) (envelope, error) {
	var env envelope
	dec := xml.NewDecoder(bytes.NewReader(body))
	// A path of local names from the root; stack[0] is the Envelope.
	var stack []string
	var text strings.Builder
	roots, bodies := 0, 0
	inID, inAction, inTicket := 0, false, false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return env, fmt.Errorf("%w: %v", errSOAPEnvelope, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return env, errXMLDTD
		case xml.StartElement:
			if len(stack) >= maxSOAPDepth {
				return env, fmt.Errorf("%w: nested deeper than %d elements", errSOAPEnvelope, maxSOAPDepth)
			}
			name := t.Name.Local
			depth := len(stack)
			switch {
			case depth == 0:
				roots++
				if roots > 1 || !strings.EqualFold(name, "Envelope") {
					return env, fmt.Errorf("%w: the root element is not one Envelope", errSOAPEnvelope)
				}
			case depth == 1 && strings.EqualFold(name, "Body"):
				bodies++
				if bodies > 1 {
					return env, fmt.Errorf("%w: more than one Body", errSOAPEnvelope)
				}
			case depth == 2 && strings.EqualFold(stack[1], "Body"):
				if env.operation == "" {
					env.operation = name
				} else if strings.EqualFold(name, soapResetOperation) {
					env.laterReset = true
				}
			case depth == 2 && strings.EqualFold(stack[1], "Header") && strings.EqualFold(name, "Action"):
				inAction = true
				text.Reset()
			case depth >= 2 && strings.EqualFold(stack[1], "Header") && strings.EqualFold(name, "Credentials"):
				// Anywhere in the Header: a nested copy is still one the
				// backend might read.
				env.credentials++
			case depth >= 3 && strings.EqualFold(stack[1], "Header") && strings.EqualFold(stack[depth-1], "Credentials"):
				if strings.EqualFold(name, "Ticket") {
					env.tickets++
					inTicket = true
					text.Reset()
				} else {
					env.otherCredential = true
				}
			case inTicket:
				env.otherCredential = true
			case depth >= 3 && strings.EqualFold(stack[1], "Body") && strings.EqualFold(stack[2], soapResetOperation) &&
				stack[2] == env.operation:
				if inID > 0 {
					env.idHasMarkup = true
				}
				if strings.EqualFold(name, agentsIDField) {
					env.ids++
					inID++
					text.Reset()
				}
			}
			if inAction && depth > 2 {
				// An Action holding markup names no operation we can
				// trust.
				return env, fmt.Errorf("%w: markup inside a WS-Addressing Action", errSOAPEnvelope)
			}
			stack = append(stack, name)
		case xml.EndElement:
			if len(stack) == 0 {
				return env, fmt.Errorf("%w: unbalanced end element", errSOAPEnvelope)
			}
			stack = stack[:len(stack)-1]
			switch {
			case inTicket && len(stack) >= 3 && strings.EqualFold(stack[len(stack)-1], "Credentials"):
				inTicket = false
				env.ticket = strings.TrimSpace(text.String())
			case inAction && len(stack) == 2:
				inAction = false
				if a := actionOperation(text.String()); a != "" {
					env.wsaActions = append(env.wsaActions, a)
				}
			case inID > 0:
				inID--
				if inID == 0 {
					env.id = text.String()
				}
			}
		case xml.CharData:
			if inAction || inTicket || inID > 0 {
				text.Write(t)
			}
		}
	}
	if roots == 0 {
		return env, fmt.Errorf("%w: no Envelope element", errSOAPEnvelope)
	}
	return env, nil
}

// errSOAPCredentials: the envelope's Credentials are not one Ticket.
var errSOAPCredentials = errors.New("soap: the envelope's Credentials hold something other than one Ticket")

// envelopeTicket returns the ticket of a SOAP envelope's
// <Credentials><Ticket>, and whether the envelope carries Credentials at
// all. Anything but exactly one Ticket in one Credentials element is an
// error: the guard could not know whom the backend will authenticate.
func envelopeTicket(body []byte) (ticket string, present bool, err error) {
	env, err := parseEnvelope(body)
	if err != nil {
		return "", false, err
	}
	if env.credentials == 0 {
		return "", false, nil
	}
	if env.credentials > 1 || env.tickets != 1 || env.otherCredential || env.ticket == "" {
		return "", true, errSOAPCredentials
	}
	return env.ticket, true, nil
}
