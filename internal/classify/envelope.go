package classify

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxSOAPDepth bounds element nesting in an envelope: a ResetChatSession
// call is four levels deep, and a deeper document is refused instead of
// walked.
const maxSOAPDepth = 64

// errSOAPCredentials: the envelope's Credentials are not one Ticket.
var errSOAPCredentials = errors.New("soap: the envelope's Credentials hold something other than one Ticket")

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
	var w envelopeWalker
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return w.env, fmt.Errorf("%w: %w", errSOAPEnvelope, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return w.env, errXMLDTD
		case xml.StartElement:
			err = w.start(t.Name.Local)
		case xml.EndElement:
			err = w.end()
		case xml.CharData:
			if w.inAction || w.inTicket || w.inID > 0 {
				w.text.Write(t)
			}
		}
		if err != nil {
			return w.env, err
		}
	}
	if w.roots == 0 {
		return w.env, fmt.Errorf("%w: no Envelope element", errSOAPEnvelope)
	}
	return w.env, nil
}

// envelopeWalker is parseEnvelope's state between tokens.
type envelopeWalker struct {
	env envelope
	// stack is the path of local names from the root; stack[0] is the
	// Envelope.
	stack []string
	// text collects the character data of the element being read (an
	// Action, a Ticket or a ChatSessionId).
	text          strings.Builder
	roots, bodies int
	inID          int
	inAction      bool
	inTicket      bool
}

// start takes a start element named name.
func (w *envelopeWalker) start(name string) error {
	if len(w.stack) >= maxSOAPDepth {
		return fmt.Errorf("%w: nested deeper than %d elements", errSOAPEnvelope, maxSOAPDepth)
	}
	stack, depth, eq := w.stack, len(w.stack), strings.EqualFold
	switch {
	case depth == 0:
		w.roots++
		if w.roots > 1 || !eq(name, "Envelope") {
			return fmt.Errorf("%w: the root element is not one Envelope", errSOAPEnvelope)
		}
	case depth == 1 && eq(name, "Body"):
		w.bodies++
		if w.bodies > 1 {
			return fmt.Errorf("%w: more than one Body", errSOAPEnvelope)
		}
	case depth == 2 && eq(stack[1], "Body"):
		if w.env.operation == "" {
			w.env.operation = name
		} else if eq(name, soapResetOperation) {
			w.env.laterReset = true
		}
	case depth == 2 && eq(stack[1], "Header") && eq(name, "Action"):
		w.inAction = true
		w.text.Reset()
	case depth >= 2 && eq(stack[1], "Header") && eq(name, "Credentials"):
		// Anywhere in the Header: a nested copy is still one the
		// backend might read.
		w.env.credentials++
	case depth >= 3 && eq(stack[1], "Header") && eq(stack[depth-1], "Credentials"):
		if eq(name, "Ticket") {
			w.env.tickets++
			w.inTicket = true
			w.text.Reset()
		} else {
			w.env.otherCredential = true
		}
	case w.inTicket:
		w.env.otherCredential = true
	case depth >= 3 && eq(stack[1], "Body") && eq(stack[2], soapResetOperation) && stack[2] == w.env.operation:
		if w.inID > 0 {
			w.env.idHasMarkup = true
		}
		if eq(name, agentsIDField) {
			w.env.ids++
			w.inID++
			w.text.Reset()
		}
	}
	if w.inAction && depth > 2 {
		// An Action holding markup names no operation we can trust.
		return fmt.Errorf("%w: markup inside a WS-Addressing Action", errSOAPEnvelope)
	}
	w.stack = append(w.stack, name)
	return nil
}

// end takes an end element, closing the text being collected when it
// ends its element.
func (w *envelopeWalker) end() error {
	if len(w.stack) == 0 {
		return fmt.Errorf("%w: unbalanced end element", errSOAPEnvelope)
	}
	w.stack = w.stack[:len(w.stack)-1]
	n := len(w.stack)
	switch {
	case w.inTicket && n >= 3 && strings.EqualFold(w.stack[n-1], "Credentials"):
		w.inTicket = false
		w.env.ticket = strings.TrimSpace(w.text.String())
	case w.inAction && n == 2:
		w.inAction = false
		if a := actionOperation(w.text.String()); a != "" {
			w.env.wsaActions = append(w.env.wsaActions, a)
		}
	case w.inID > 0:
		w.inID--
		if w.inID == 0 {
			w.env.id = w.text.String()
		}
	}
	return nil
}

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
