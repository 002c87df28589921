package superoffice

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// scalarKind records how a value was sent, because the same field may
// legitimately arrive as a string or a number (Status) or as null.
type scalarKind uint8

const (
	kindNull scalarKind = iota // absent, null or i:nil
	kindString
	kindNumber
	kindOther // bool, object or array: never valid for the fields using scalar
)

// scalar holds a string-or-number field until it is interpreted, so errors
// can name the field (encoding/json does not add context to errors from
// UnmarshalJSON).
type scalar struct {
	text string
	kind scalarKind
}

// UnmarshalJSON never fails on a valid value; invalid kinds are reported
// with the field name by whoever interprets the field.
func (s *scalar) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case 'n':
		*s = scalar{}
	case '"':
		s.kind = kindString
		if bytes.IndexByte(b, '\\') < 0 {
			s.text = string(b[1 : len(b)-1])
		} else if err := json.Unmarshal(b, &s.text); err != nil {
			return fmt.Errorf("superoffice: JSON string: %w", err)
		}
	case 't', 'f', '{', '[':
		*s = scalar{kind: kindOther}
	default:
		*s = scalar{text: string(b), kind: kindNumber}
	}
	return nil
}

// jsonAssociate reads only the key of the nested Associate; its names are
// personal data and stay in the body.
type jsonAssociate struct {
	AssociateID *int32 `json:"AssociateId"`
}

// jsonEntity lists only the audit-safe keys; encoding/json skips the rest
// without storing them.
type jsonEntity struct {
	ID              *int32         `json:"ChatSessionId"`
	TopicID         int32          `json:"TopicId"`
	User            *jsonAssociate `json:"User"`
	Status          scalar         `json:"Status"`
	WhenRequested   scalar         `json:"WhenRequested"`
	WhenStarted     scalar         `json:"WhenStarted"`
	WhenEnded       scalar         `json:"WhenEnded"`
	WhenIdle        scalar         `json:"WhenIdle"`
	InitialQueuePos int32          `json:"InitialQueuePos"`
	AlertLevel      int32          `json:"AlertLevel"`
	Rank            int32          `json:"Rank"`
	Flags           scalar         `json:"Flags"`
	TransferTo      *jsonAssociate `json:"TransferTo"`
	ChatbotIsActive bool           `json:"ChatbotIsActive"`
	Rating          int32          `json:"Rating"`
}

// jsonCustomer holds the customer fields, in CustomerFields order.
type jsonCustomer struct {
	CustomerName        scalar `json:"CustomerName"`
	CustomerEmail       scalar `json:"CustomerEmail"`
	CustomerPhone       scalar `json:"CustomerPhone"`
	CustomerHost        scalar `json:"CustomerHost"`
	CustomerAlias       scalar `json:"CustomerAlias"`
	CustomerCompanyName scalar `json:"CustomerCompanyName"`
}

func (c *jsonCustomer) fields() [len(CustomerFields)]scalar {
	return [...]scalar{c.CustomerName, c.CustomerEmail, c.CustomerPhone, c.CustomerHost, c.CustomerAlias, c.CustomerCompanyName}
}

// jsonEntityCustomer is the entity with its customer fields. It is used
// only when some were asked for, so that by default they are skipped
// like every other key the record does not hold.
type jsonEntityCustomer struct {
	jsonEntity
	jsonCustomer
}

func decodeJSON(data []byte, out *rawEntity) error {
	if bytes.Equal(data, []byte("null")) {
		return fmt.Errorf(errPrefix+"JSON null: %w", ErrNoEntity)
	}
	// The wider struct only when asked: it would cost every other
	// decoding its size.
	var target any
	var e *jsonEntity
	var c *jsonCustomer
	if out.customer == nil {
		e = new(jsonEntity)
		target = e
	} else {
		w := new(jsonEntityCustomer)
		e, c, target = &w.jsonEntity, &w.jsonCustomer, w
	}
	if !scanEntity(data, e, c) {
		// Not a document the single-pass reader is sure of: encoding/json
		// decides, from zero values, and names any error.
		*e = jsonEntity{}
		if c != nil {
			*c = jsonCustomer{}
		}
		if err := json.Unmarshal(data, target); err != nil {
			return fmt.Errorf(errPrefix+"JSON: %w", err)
		}
	}
	out.topicID, out.initialQueuePos, out.alertLevel = e.TopicID, e.InitialQueuePos, e.AlertLevel
	out.rank, out.rating, out.chatbotIsActive = e.Rank, e.Rating, e.ChatbotIsActive
	out.status, out.flags = e.Status, e.Flags
	out.whenRequested, out.whenStarted, out.whenEnded, out.whenIdle = e.WhenRequested, e.WhenStarted, e.WhenEnded, e.WhenIdle
	if e.ID != nil {
		out.hasID, out.id = true, *e.ID
	}
	if e.User != nil {
		out.user = e.User.AssociateID
	}
	if e.TransferTo != nil {
		out.transferTo = e.TransferTo.AssociateID
	}
	if c != nil {
		for i, v := range c.fields() {
			if name := out.customer.match(CustomerFields[i]); name != "" {
				out.customer.setJSON(name, v)
			}
		}
	}
	return nil
}

// decodePolicyEntity reads a JSON entity for the policy input: as a plain
// object, numbers kept exact (json.Number), with the Redacted fields
// removed (matched case-insensitively, as the backend's keys are).
func decodePolicyEntity(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var entity map[string]any
	if err := dec.Decode(&entity); err != nil {
		return nil, fmt.Errorf("superoffice: decoding the entity: %w", err)
	}
	if entity == nil {
		return nil, errors.New("superoffice: backend returned no entity")
	}
	for k := range entity {
		for _, r := range Redacted {
			if strings.EqualFold(k, r) {
				delete(entity, k)
			}
		}
	}
	return entity, nil
}
