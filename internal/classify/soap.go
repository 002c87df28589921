package classify

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// soapResetOperation is the Chat service operation that resets a session.
const soapResetOperation = "resetchatsession"

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
	// errXMLDTD: document type declarations are refused outright, in
	// envelopes and Agents bodies alike: they are the vehicle of entity
	// expansion and external entity attacks, and WCF itself prohibits
	// them.
	errXMLDTD = errors.New("xml: DTDs and entity declarations are refused")
)

// msgSOAPEnvelope is the client's message for a Chat.svc call whose
// operation cannot be determined.
const msgSOAPEnvelope = "the operation of this Chat service call cannot be determined"

// SOAPCall is a ResetChatSession call on the Chat.svc path, as its
// headers and envelope give it.
type SOAPCall struct {
	// SessionID is the envelope's one ChatSessionId.
	SessionID int32
	// EnvelopeCredentials: the envelope carries Credentials, which the
	// backend authenticates instead of HTTP headers.
	EnvelopeCredentials bool
	// EnvelopeTicket is the Credentials' one Ticket; "" when the
	// Credentials are not exactly that, which the guard must refuse.
	EnvelopeTicket string
}

// InspectSOAP decides whether a request on the Chat.svc path is a
// ResetChatSession call. pass is true for another operation (its body
// read with ReadBody, bounded by maxBytes and timeout, and restored for
// the backend) and for a bodiless GET, HEAD or OPTIONS request without a
// method override, such as the WSDL, which cannot carry an operation.
// Otherwise it returns the call, or the refusal when the body cannot be
// read or the operation or its id is not certain.
func InspectSOAP(w http.ResponseWriter, r *http.Request, maxBytes int64, timeout time.Duration) (call *SOAPCall, pass bool, ref *refusal.Refusal) {
	if (r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions) && r.ContentLength == 0 &&
		len(r.TransferEncoding) == 0 && !MethodOverride(r.Header) {
		return nil, true, nil
	}
	body, ref := ReadBody(w, r, maxBytes, timeout)
	if ref != nil {
		return nil, false, ref
	}
	reset, id, err := classifySOAP(soapRequest{
		actions:     r.Header.Values("SOAPAction"),
		contentType: r.Header.Get("Content-Type"),
		pathInfo:    soapPathInfo(r.URL.EscapedPath()),
		body:        body,
	})
	if err != nil {
		return nil, false, soapRefusal(err)
	}
	if !reset {
		return nil, true, nil
	}
	ticket, present, err := envelopeTicket(body)
	if err != nil && !errors.Is(err, errSOAPCredentials) {
		return nil, false, refusal.New(http.StatusBadRequest, refusal.SOAPEnvelopeInvalid, msgSOAPEnvelope).Wrap(err)
	}
	return &SOAPCall{SessionID: id, EnvelopeCredentials: present, EnvelopeTicket: ticket}, false, nil
}

// soapRefusal maps an error of classifySOAP to the client's refusal.
func soapRefusal(err error) *refusal.Refusal {
	switch {
	case errors.Is(err, errXMLDTD):
		return xmlDTDRefusal(err)
	case errors.Is(err, errSOAPAmbiguous):
		return refusal.New(http.StatusBadRequest, refusal.SOAPActionAmbiguous,
			"the SOAP action headers and the envelope disagree about ResetChatSession").Wrap(err)
	case errors.Is(err, errSOAPEnvelope):
		return refusal.New(http.StatusBadRequest, refusal.SOAPEnvelopeInvalid, msgSOAPEnvelope).Wrap(err)
	case errors.Is(err, errBadSessionID):
		return refusal.New(http.StatusBadRequest, refusal.BadSessionID,
			"the ResetChatSession envelope holds no single valid ChatSessionId").Wrap(err)
	default:
		return refusal.New(http.StatusBadRequest, refusal.SOAPEnvelopeInvalid, msgSOAPEnvelope).Wrap(err)
	}
}

// xmlDTDRefusal is the refusal of an XML body (Agents or SOAP) that
// declares a document type.
func xmlDTDRefusal(err error) *refusal.Refusal {
	return refusal.New(http.StatusBadRequest, refusal.XMLDTDRefused,
		"XML document type declarations are not accepted").Wrap(err)
}

// soapPathInfo returns the normalised segments after the Chat.svc
// segment: WCF path info selecting an endpoint, which may name the
// operation too.
func soapPathInfo(escapedPath string) []string {
	// The reading Path took the Chat service from.
	var info []string
	eachReading(escapedPath, func(segs []string) bool {
		for i, s := range segs {
			if isChatService(s) {
				info = segs[i+1:]
				return true
			}
		}
		return false
	})
	return info
}

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
	claims, err := headerClaims(req)
	if err != nil {
		return false, 0, err
	}
	env, err := parseEnvelope(req.body)
	if err != nil {
		return false, 0, err
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
			return true, 0, fmt.Errorf("%w: %w", errBadSessionID, err)
		}
		if env.idHasMarkup {
			return true, 0, errBadSessionID
		}
		id, err := SessionID(strings.TrimSpace(raw))
		return true, id, err
	case len(claims) == 0 && env.operation == "":
		return false, 0, fmt.Errorf("%w: no action header and an empty Body", errSOAPEnvelope)
	}
	return false, 0, nil
}

// headerClaims are the operations the request names outside the
// envelope: the SOAPAction header (SOAP 1.1), the Content-Type's action
// parameter (SOAP 1.2) and WCF path info.
func headerClaims(req soapRequest) ([]string, error) {
	var claims []string
	switch len(req.actions) {
	case 0:
	case 1:
		if a := actionOperation(req.actions[0]); a != "" {
			claims = append(claims, a)
		}
	default:
		// Which copy the backend honours is not ours to guess.
		return nil, fmt.Errorf("%w: %d SOAPAction headers", errSOAPAmbiguous, len(req.actions))
	}
	if req.contentType != "" {
		_, params, err := mime.ParseMediaType(req.contentType)
		if err != nil {
			return nil, fmt.Errorf("%w: content type: %w", errSOAPEnvelope, err)
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
	return claims, nil
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
