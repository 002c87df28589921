package superoffice

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxXMLDepth is far deeper than any ChatSessionEntity but stops
// pathologically nested documents from growing the tokenizer's stack.
const maxXMLDepth = 64

// xmlField identifies the child elements of ChatSessionEntity that are read.
type xmlField uint8

const (
	xmlSkip xmlField = iota
	xmlID
	xmlTopicID
	xmlUser
	xmlStatus
	xmlWhenRequested
	xmlWhenStarted
	xmlWhenEnded
	xmlWhenIdle
	xmlInitialQueuePos
	xmlAlertLevel
	xmlRank
	xmlFlags
	xmlTransferTo
	xmlChatbotIsActive
	xmlRating
)

var xmlFields = [...]struct {
	name string
	f    xmlField
}{
	{"ChatSessionId", xmlID},
	{"TopicId", xmlTopicID},
	{"User", xmlUser},
	{"Status", xmlStatus},
	{"WhenRequested", xmlWhenRequested},
	{"WhenStarted", xmlWhenStarted},
	{"WhenEnded", xmlWhenEnded},
	{"WhenIdle", xmlWhenIdle},
	{"InitialQueuePos", xmlInitialQueuePos},
	{"AlertLevel", xmlAlertLevel},
	{"Rank", xmlRank},
	{"Flags", xmlFlags},
	{"TransferTo", xmlTransferTo},
	{"ChatbotIsActive", xmlChatbotIsActive},
	{"Rating", xmlRating},
}

// lookupXMLField matches case-insensitively, as JSON keys are, so both
// formats accept the same spellings.
func lookupXMLField(local string) (xmlField, string) {
	for _, x := range xmlFields {
		if x.name == local {
			return x.f, x.name
		}
	}
	for _, x := range xmlFields {
		if strings.EqualFold(x.name, local) {
			return x.f, x.name
		}
	}
	return xmlSkip, ""
}

var errXMLDirective = errors.New("document contains a DTD or other directive")

// xmlReader wraps the tokenizer so every token, including those inside
// skipped elements, is checked for directives and nesting depth.
type xmlReader struct {
	d     *xml.Decoder
	depth int
}

func (x *xmlReader) next() (xml.Token, error) {
	tok, err := x.d.Token()
	if err != nil {
		if err == io.EOF {
			return nil, err
		}
		return nil, fmt.Errorf(errPrefix+"XML: %w", err)
	}
	switch tok.(type) {
	case xml.StartElement:
		x.depth++
		if x.depth > maxXMLDepth {
			return nil, fmt.Errorf(errPrefix+"XML: nesting deeper than %d", maxXMLDepth)
		}
	case xml.EndElement:
		x.depth--
	case xml.Directive:
		// encoding/xml never expands external entities, but a DTD has no
		// place in a WebAPI response and is refused outright.
		return nil, fmt.Errorf(errPrefix+"XML: %w", errXMLDirective)
	}
	return tok, nil
}

// nextOrUnexpected turns EOF inside an element into an error.
func (x *xmlReader) nextOrUnexpected() (xml.Token, error) {
	tok, err := x.next()
	if err == io.EOF {
		return nil, fmt.Errorf(errPrefix+"XML: %w", io.ErrUnexpectedEOF)
	}
	return tok, err
}

// skip consumes the rest of the current element without keeping any text.
func (x *xmlReader) skip() error {
	for target := x.depth - 1; x.depth > target; {
		if _, err := x.nextOrUnexpected(); err != nil {
			return err
		}
	}
	return nil
}

// text returns the character data of the current simple element.
func (x *xmlReader) text(field string) (string, error) {
	var (
		s   string
		buf []byte
		n   int
	)
	for {
		tok, err := x.nextOrUnexpected()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			// Usually one chunk; CDATA sections and comments split it.
			switch n++; n {
			case 1:
				s = string(t)
			case 2:
				buf = append(append(buf, s...), t...)
			default:
				buf = append(buf, t...)
			}
		case xml.StartElement:
			return "", fmt.Errorf(errPrefix+"XML: %s: unexpected element <%s>", field, clip(t.Name.Local))
		case xml.EndElement:
			if n > 1 {
				s = string(buf)
			}
			return strings.TrimSpace(s), nil
		}
	}
}

// ownText returns the element's own character data, as sent: the text of
// nested elements is skipped, not refused, because a customer field is
// kept for the record as the backend wrote it.
func (x *xmlReader) ownText() (string, error) {
	var b strings.Builder
	for base := x.depth; ; {
		tok, err := x.nextOrUnexpected()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if x.depth == base {
				b.Write(t)
			}
		case xml.EndElement:
			if x.depth < base {
				return b.String(), nil
			}
		}
	}
}

func isNil(attrs []xml.Attr) bool {
	for _, a := range attrs {
		if a.Name.Local == "nil" {
			v := strings.TrimSpace(a.Value)
			return v == "true" || v == "1"
		}
	}
	return false
}

func (x *xmlReader) int32Field(field string, null bool) (int32, bool, error) {
	s, err := x.text(field)
	if err != nil || null || s == "" {
		return 0, false, err
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf(errPrefix+"XML: %s: %w", field, err)
	}
	return int32(n), true, nil
}

func (x *xmlReader) scalarField(field string, null bool) (scalar, error) {
	s, err := x.text(field)
	if err != nil || null {
		return scalar{}, err
	}
	return scalar{text: s, kind: kindString}, nil
}

// associate reads AssociateId from a nested Associate element.
func (x *xmlReader) associate(field string, null bool) (*int32, error) {
	var id *int32
	for base := x.depth; ; {
		tok, err := x.nextOrUnexpected()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if x.depth != base+1 || !strings.EqualFold(t.Name.Local, "AssociateId") {
				continue
			}
			n, ok, err := x.int32Field(field+".AssociateId", null || isNil(t.Attr))
			if err != nil {
				return nil, err
			}
			id = nil
			if ok {
				id = &n
			}
		case xml.EndElement:
			if x.depth < base {
				if null {
					return nil, nil
				}
				return id, nil
			}
		}
	}
}

func decodeXML(data []byte, out *rawEntity) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	x := &xmlReader{d: d}
	if err := x.root(); err != nil {
		return err
	}
	for {
		tok, err := x.nextOrUnexpected()
		if err != nil {
			return err
		}
		if _, ok := tok.(xml.EndElement); ok {
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			if err := x.field(se, out); err != nil {
				return err
			}
		}
	}
	return x.epilogue()
}

// root reads up to the root element, which must be a non-nil
// ChatSessionEntity in any namespace.
func (x *xmlReader) root() error {
	for {
		tok, err := x.next()
		if err == io.EOF {
			return fmt.Errorf(errPrefix+"XML: no root element: %w", ErrNoEntity)
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !strings.EqualFold(t.Name.Local, "ChatSessionEntity") {
				return fmt.Errorf(errPrefix+"XML root <%s>: %w", clip(t.Name.Local), ErrNoEntity)
			}
			if isNil(t.Attr) {
				return fmt.Errorf(errPrefix+"XML root is nil: %w", ErrNoEntity)
			}
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New(errPrefix + "XML: text before the root element")
			}
		}
	}
}

// field reads one child element of the root into out.
func (x *xmlReader) field(se xml.StartElement, out *rawEntity) error {
	null := isNil(se.Attr)
	if name := out.customer.match(se.Name.Local); name != "" {
		s, err := x.ownText()
		if err == nil && !null {
			out.customer.values[name] = s
		}
		return err
	}
	f, name := lookupXMLField(se.Name.Local)
	var err error
	switch f {
	case xmlSkip:
		err = x.skip()
	case xmlID:
		out.id, out.hasID, err = x.int32Field(name, null)
	case xmlTopicID:
		out.topicID, _, err = x.int32Field(name, null)
	case xmlInitialQueuePos:
		out.initialQueuePos, _, err = x.int32Field(name, null)
	case xmlAlertLevel:
		out.alertLevel, _, err = x.int32Field(name, null)
	case xmlRank:
		out.rank, _, err = x.int32Field(name, null)
	case xmlRating:
		out.rating, _, err = x.int32Field(name, null)
	case xmlUser:
		out.user, err = x.associate(name, null)
	case xmlTransferTo:
		out.transferTo, err = x.associate(name, null)
	case xmlStatus:
		out.status, err = x.scalarField(name, null)
	case xmlFlags:
		out.flags, err = x.scalarField(name, null)
	case xmlWhenRequested:
		out.whenRequested, err = x.scalarField(name, null)
	case xmlWhenStarted:
		out.whenStarted, err = x.scalarField(name, null)
	case xmlWhenEnded:
		out.whenEnded, err = x.scalarField(name, null)
	case xmlWhenIdle:
		out.whenIdle, err = x.scalarField(name, null)
	case xmlChatbotIsActive:
		var s string
		if s, err = x.text(name); err == nil && !null {
			out.chatbotIsActive, err = parseXMLBool(name, s)
		}
	}
	return err
}

// epilogue checks that whatever follows the root is ignorable;
// encoding/xml would otherwise accept a second root or a trailing DTD.
func (x *xmlReader) epilogue() error {
	for {
		tok, err := x.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return errors.New(errPrefix + "XML: content after the root element")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return errors.New(errPrefix + "XML: text after the root element")
			}
		}
	}
}

// parseXMLBool accepts the xsd:boolean lexical forms.
func parseXMLBool(field, s string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0", "":
		return false, nil
	}
	return false, fmt.Errorf(errPrefix+"XML: %s: invalid boolean %q", field, clip(s))
}
