package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// CustomerFields are the entity's customer fields an operator may opt in
// to, by their SuperOffice names; the record names them in snake case.
var CustomerFields = map[string]string{
	"CustomerName":        "customer_name",
	"CustomerEmail":       "customer_email",
	"CustomerPhone":       "customer_phone",
	"CustomerHost":        "customer_host",
	"CustomerAlias":       "customer_alias",
	"CustomerCompanyName": "customer_company_name",
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
	key    []byte
}

// NewCustomerRedactor checks the field names and treatments. A hash
// treatment needs a key, or the hashes of low-entropy values (phone
// numbers) could be reversed by guessing.
func NewCustomerRedactor(fields map[string]string, key []byte) (*CustomerRedactor, error) {
	out := &CustomerRedactor{fields: map[string]string{}, key: key}
	for name, how := range fields {
		canonical := ""
		for f := range CustomerFields {
			if strings.EqualFold(f, name) {
				canonical = f
			}
		}
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
		out.fields[canonical] = how
	}
	return out, nil
}

// Fields decodes the chosen fields from the upstream body (same formats
// and encodings as DecodeEntity) and returns record field -> value or
// "hmac-sha256:<hex>". Absent and null fields are left out.
func (c *CustomerRedactor) Fields(body []byte, contentType, contentEncoding string, maxDecoded int64) (map[string]string, error) {
	if maxDecoded <= 0 {
		maxDecoded = defaultMaxDecoded
	}
	format, err := parseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	codings, n, err := parseCodings(contentEncoding)
	if err != nil {
		return nil, err
	}
	data, err := decodeContent(body, codings[:n], maxDecoded)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimSpace(bytes.TrimPrefix(data, utf8BOM))
	var raw map[string]string
	if format == formatJSON {
		raw, err = c.fromJSON(data)
	} else {
		raw, err = c.fromXML(data)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for name, v := range raw {
		if c.fields[name] == CustomerHash {
			m := hmac.New(sha256.New, c.key)
			m.Write([]byte(v))
			v = "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
		}
		out[CustomerFields[name]] = v
	}
	return out, nil
}

func (c *CustomerRedactor) canonical(name string) string {
	for f := range c.fields {
		if strings.EqualFold(f, name) {
			return f
		}
	}
	return ""
}

func (c *CustomerRedactor) fromJSON(data []byte) (map[string]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, fmt.Errorf("audit: customer fields: %w", err)
	}
	out := map[string]string{}
	for k, v := range obj {
		name := c.canonical(k)
		if name == "" {
			continue
		}
		var s *string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("audit: customer field %s is not a string", name)
		}
		if s != nil {
			out[name] = *s
		}
	}
	return out, nil
}

// fromXML reads the root element's direct children, namespace-agnostic.
func (c *CustomerRedactor) fromXML(data []byte) (map[string]string, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	out := map[string]string{}
	depth := 0
	current := ""
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("audit: customer fields: %w", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, errors.New("audit: customer fields: DTDs are refused")
		case xml.StartElement:
			depth++
			if depth == 2 {
				current = c.canonical(t.Name.Local)
				text.Reset()
				for _, a := range t.Attr {
					if a.Name.Local == "nil" && a.Value == "true" {
						current = ""
					}
				}
			}
		case xml.CharData:
			if depth == 2 && current != "" {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 2 && current != "" {
				out[current] = text.String()
				current = ""
			}
			depth--
		}
	}
}
