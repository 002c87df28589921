package superoffice

import (
	"fmt"
	"strings"
)

// The ChatSessionEntity's customer fields, as the backend names them:
// personal data, left out of every record and policy input unless an
// operator opts in.
const (
	CustomerName        = "CustomerName"
	CustomerEmail       = "CustomerEmail"
	CustomerPhone       = "CustomerPhone"
	CustomerHost        = "CustomerHost"
	CustomerAlias       = "CustomerAlias"
	CustomerCompanyName = "CustomerCompanyName"
)

// CustomerFields lists the customer fields.
var CustomerFields = [...]string{CustomerName, CustomerEmail, CustomerPhone, CustomerHost, CustomerAlias, CustomerCompanyName}

// Redacted lists the entity fields that never reach a policy: the
// customer's session secret, chat text and personal data.
var Redacted = [...]string{
	"SessionKey", "FirstMessage", "LastMessage", "Person",
	CustomerName, CustomerEmail, CustomerPhone, CustomerHost, CustomerAlias, CustomerCompanyName,
}

// CustomerField returns the customer field named name, matched
// case-insensitively as the backend's keys are, or "" if it is none.
func CustomerField(name string) string {
	for _, f := range CustomerFields {
		if strings.EqualFold(f, name) {
			return f
		}
	}
	return ""
}

// customerSet collects the customer fields one decoding was asked for.
// A nil set was asked for none and collects nothing.
type customerSet struct {
	wanted [len(CustomerFields)]bool // by CustomerFields index
	values map[string]string
	err    error
}

// newCustomerSet returns the set for names, or nil when none of them is a
// customer field.
func newCustomerSet(names []string) *customerSet {
	var s *customerSet
	for _, name := range names {
		for i, f := range CustomerFields {
			if strings.EqualFold(f, name) {
				if s == nil {
					s = &customerSet{values: map[string]string{}}
				}
				s.wanted[i] = true
			}
		}
	}
	return s
}

// match returns the canonical name of a wanted field, or "".
func (s *customerSet) match(name string) string {
	if s == nil {
		return ""
	}
	for i, f := range CustomerFields {
		if s.wanted[i] && strings.EqualFold(f, name) {
			return f
		}
	}
	return ""
}

// setJSON keeps a JSON string value; null leaves the field out, and any
// other kind makes the set unusable.
func (s *customerSet) setJSON(name string, v scalar) {
	switch v.kind {
	case kindString:
		s.values[name] = v.text
	case kindNumber, kindOther:
		if s.err == nil {
			s.err = fmt.Errorf(errPrefix+"customer field %s is not a string", name)
		}
	}
}

// result is what the Entity carries.
func (s *customerSet) result() (map[string]string, error) {
	if s == nil {
		return nil, nil
	}
	return s.values, s.err
}
