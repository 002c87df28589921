package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// CustomerFields are the entity's customer fields an operator may opt in
// to, by their SuperOffice names; the record names them in snake case.
var CustomerFields = map[string]string{
	superoffice.CustomerName:        "customer_name",
	superoffice.CustomerEmail:       "customer_email",
	superoffice.CustomerPhone:       "customer_phone",
	superoffice.CustomerHost:        "customer_host",
	superoffice.CustomerAlias:       "customer_alias",
	superoffice.CustomerCompanyName: "customer_company_name",
}

// Customer field treatments.
const (
	CustomerHash  = "hash"  // HMAC-SHA256 under the configured key: correlatable, not readable
	CustomerClear = "clear" // the value itself, only where an operator explicitly asks
)

// CustomerRedactor turns chosen customer fields of an entity into record
// fields. It exists only when a config opts in; by default no customer
// data is decoded at all.
type CustomerRedactor struct {
	fields map[string]string // SuperOffice name -> treatment
	names  []string          // the keys of fields, for the decoder
	key    []byte
}

// NewCustomerRedactor checks the field names and treatments. A hash
// treatment needs a key, or the hashes of low-entropy values (phone
// numbers) could be reversed by guessing.
func NewCustomerRedactor(fields map[string]string, key []byte) (*CustomerRedactor, error) {
	out := &CustomerRedactor{fields: map[string]string{}, key: key}
	for name, how := range fields {
		canonical := superoffice.CustomerField(name)
		if canonical == "" {
			return nil, fmt.Errorf("audit: %q is not a customer field (one of CustomerName, CustomerEmail, CustomerPhone, CustomerHost, CustomerAlias, CustomerCompanyName)", name)
		}
		switch how {
		case CustomerHash:
			if len(key) == 0 {
				return nil, errors.New("audit: hashing customer fields needs a customer_key")
			}
		case CustomerClear:
		default:
			return nil, fmt.Errorf("audit: customer field %s: treatment %q, want hash or clear", name, how)
		}
		if _, dup := out.fields[canonical]; !dup {
			out.names = append(out.names, canonical)
		}
		out.fields[canonical] = how
	}
	return out, nil
}

// Names are the SuperOffice names of the chosen fields, for
// superoffice.DecodeOptions.Customer; nil for a nil redactor, so that
// without an opt-in the decoder reads no customer field.
func (c *CustomerRedactor) Names() []string {
	if c == nil {
		return nil
	}
	return c.names
}

// Fields returns the chosen fields of a decoded entity as record field ->
// value or "hmac-sha256:<hex>". Absent and null fields are left out. An
// entity whose chosen field was not a string gives an error and no
// fields.
func (c *CustomerRedactor) Fields(e *superoffice.Entity) (map[string]string, error) {
	if e.CustomerErr != nil {
		return nil, fmt.Errorf("audit: customer fields: %w", e.CustomerErr)
	}
	out := make(map[string]string, len(e.Customer))
	for name, v := range e.Customer {
		how, ok := c.fields[name]
		if !ok {
			continue
		}
		if how == CustomerHash {
			m := hmac.New(sha256.New, c.key)
			m.Write([]byte(v))
			v = "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
		}
		out[CustomerFields[name]] = v
	}
	return out, nil
}
