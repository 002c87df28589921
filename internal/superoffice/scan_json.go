package superoffice

import (
	"strconv"
)

// A single-pass reader for the common ChatSessionEntity.
//
// encoding/json reads an entity in two passes (checkValid over the whole
// body, then the decode, matching every key against the struct's fields),
// the largest share of decoding a reset's answer. scanEntity reads the
// same bytes once, into the same jsonEntity and jsonCustomer values, but
// only where it is sure to read them as encoding/json does: the body is
// one valid JSON object; every key it must compare is plain ASCII without
// escapes (matched case-insensitively, as encoding/json folds ASCII keys);
// every value it keeps has the kind encoding/json accepts for its field;
// nesting stays shallow. Anything else (including every input encoding/json
// refuses) makes it give up, and the caller decodes with encoding/json,
// which then gives the answer and its exact error. The scalar fields go
// through scalar.UnmarshalJSON with the value's bytes, as encoding/json
// hands them over. FuzzScanEntityMatchesEncodingJSON holds the two to
// the same result.

// scanMaxDepth bounds the nesting the reader follows; deeper documents
// are left to encoding/json (whose own bound is 10000).
const scanMaxDepth = 64

// jsonScanner reads one document.
type jsonScanner struct {
	data []byte
	i    int
}

// scanEntity fills e (and c, when not nil) from data as
// json.Unmarshal(data, target) would, and reports whether it could; when
// it could not, e and c hold partial values the caller must discard.
func scanEntity(data []byte, e *jsonEntity, c *jsonCustomer) bool {
	s := jsonScanner{data: data}
	s.space()
	if !s.object(func(key []byte) bool { return s.entityMember(key, e, c) }, 1, true) {
		return false
	}
	s.space()
	return s.i == len(s.data)
}

// entityMember reads the value of one top-level member.
func (s *jsonScanner) entityMember(key []byte, e *jsonEntity, c *jsonCustomer) bool {
	switch {
	case foldEq(key, "ChatSessionId"):
		return s.int32Ptr(&e.ID)
	case foldEq(key, "TopicId"):
		return s.int32(&e.TopicID)
	case foldEq(key, "User"):
		return s.associate(&e.User)
	case foldEq(key, "Status"):
		return s.scalar(&e.Status)
	case foldEq(key, "WhenRequested"):
		return s.scalar(&e.WhenRequested)
	case foldEq(key, "WhenStarted"):
		return s.scalar(&e.WhenStarted)
	case foldEq(key, "WhenEnded"):
		return s.scalar(&e.WhenEnded)
	case foldEq(key, "WhenIdle"):
		return s.scalar(&e.WhenIdle)
	case foldEq(key, "InitialQueuePos"):
		return s.int32(&e.InitialQueuePos)
	case foldEq(key, "AlertLevel"):
		return s.int32(&e.AlertLevel)
	case foldEq(key, "Rank"):
		return s.int32(&e.Rank)
	case foldEq(key, "Flags"):
		return s.scalar(&e.Flags)
	case foldEq(key, "TransferTo"):
		return s.associate(&e.TransferTo)
	case foldEq(key, "ChatbotIsActive"):
		return s.bool(&e.ChatbotIsActive)
	case foldEq(key, "Rating"):
		return s.int32(&e.Rating)
	}
	if c != nil {
		switch {
		case foldEq(key, CustomerName):
			return s.scalar(&c.CustomerName)
		case foldEq(key, CustomerEmail):
			return s.scalar(&c.CustomerEmail)
		case foldEq(key, CustomerPhone):
			return s.scalar(&c.CustomerPhone)
		case foldEq(key, CustomerHost):
			return s.scalar(&c.CustomerHost)
		case foldEq(key, CustomerAlias):
			return s.scalar(&c.CustomerAlias)
		case foldEq(key, CustomerCompanyName):
			return s.scalar(&c.CustomerCompanyName)
		}
	}
	_, ok := s.value(1)
	return ok
}

// associate reads User or TransferTo: null sets the pointer to nil; an
// object is read into the pointed-to value, allocated if there is none
// (so that a repeated key updates it, as encoding/json does).
func (s *jsonScanner) associate(p **jsonAssociate) bool {
	if s.literal("null") {
		*p = nil
		return true
	}
	if s.i >= len(s.data) || s.data[s.i] != '{' {
		return false
	}
	if *p == nil {
		*p = new(jsonAssociate)
	}
	a := *p
	return s.object(func(key []byte) bool {
		if foldEq(key, "AssociateId") {
			return s.int32Ptr(&a.AssociateID)
		}
		_, ok := s.value(2)
		return ok
	}, 2, true)
}

// int32 reads a number into an int32 field; null leaves it as it is.
func (s *jsonScanner) int32(p *int32) bool {
	if s.literal("null") {
		return true
	}
	n, ok := s.integer()
	if ok {
		*p = n
	}
	return ok
}

// int32Ptr reads a number into an *int32 field; null sets it to nil.
func (s *jsonScanner) int32Ptr(p **int32) bool {
	if s.literal("null") {
		*p = nil
		return true
	}
	n, ok := s.integer()
	if ok {
		*p = &n
	}
	return ok
}

// bool reads true or false; null leaves the field as it is.
func (s *jsonScanner) bool(p *bool) bool {
	switch {
	case s.literal("null"):
		return true
	case s.literal("true"):
		*p = true
		return true
	case s.literal("false"):
		*p = false
		return true
	}
	return false
}

// scalar hands the value's bytes to scalar.UnmarshalJSON, as encoding/json
// does for every kind of value, null included.
func (s *jsonScanner) scalar(p *scalar) bool {
	raw, ok := s.value(1)
	return ok && p.UnmarshalJSON(raw) == nil
}

// integer reads a JSON number that is an integer within int32; anything
// else (a fraction, an exponent, out of range, not a number) is left to
// encoding/json, which refuses it for an int32 field.
func (s *jsonScanner) integer() (int32, bool) {
	start := s.i
	if !s.number() {
		return 0, false
	}
	n, err := strconv.ParseInt(string(s.data[start:s.i]), 10, 32)
	return int32(n), err == nil
}

// object reads an object whose members member reads, starting at its
// '{'; member is called with the reader at the member's value, and with
// the key when matchKeys is set: then every key must be plain ASCII
// without escapes, the keys whose match with a field name is plain ASCII
// case folding. An object whose members are skipped may have any keys.
func (s *jsonScanner) object(member func(key []byte) bool, depth int, matchKeys bool) bool {
	if depth > scanMaxDepth || s.i >= len(s.data) || s.data[s.i] != '{' {
		return false
	}
	s.i++
	s.space()
	if s.i < len(s.data) && s.data[s.i] == '}' {
		s.i++
		return true
	}
	for {
		var key []byte
		var ok bool
		if matchKeys {
			key, ok = s.key()
		} else {
			ok = s.i < len(s.data) && s.data[s.i] == '"' && s.string()
		}
		if !ok {
			return false
		}
		s.space()
		if s.i >= len(s.data) || s.data[s.i] != ':' {
			return false
		}
		s.i++
		s.space()
		if !member(key) {
			return false
		}
		if end, ok := s.separator('}'); !ok || end {
			return ok
		}
	}
}

// key reads a member's key: printable ASCII without escapes, the only
// keys whose field match is plain ASCII case folding.
func (s *jsonScanner) key() ([]byte, bool) {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return nil, false
	}
	start := s.i + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.i = i + 1
			return s.data[start:i], true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// value reads any JSON value and returns its bytes.
func (s *jsonScanner) value(depth int) ([]byte, bool) {
	start := s.i
	if s.i >= len(s.data) || depth > scanMaxDepth {
		return nil, false
	}
	var ok bool
	switch c := s.data[s.i]; {
	case c == '{':
		ok = s.object(func([]byte) bool { _, ok := s.value(depth + 1); return ok }, depth, false)
	case c == '[':
		ok = s.array(depth)
	case c == '"':
		ok = s.string()
	case c == 't':
		ok = s.literal("true")
	case c == 'f':
		ok = s.literal("false")
	case c == 'n':
		ok = s.literal("null")
	default:
		ok = s.number()
	}
	return s.data[start:s.i], ok
}

func (s *jsonScanner) array(depth int) bool {
	s.i++ // '['
	s.space()
	if s.i < len(s.data) && s.data[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if _, ok := s.value(depth + 1); !ok {
			return false
		}
		if end, ok := s.separator(']'); !ok || end {
			return ok
		}
	}
}

// string reads a string as JSON defines it: no control characters, only
// the escapes \" \\ \/ \b \f \n \r \t and \uXXXX. Bytes that are not
// UTF-8 are accepted, as encoding/json accepts them.
func (s *jsonScanner) string() bool {
	d := s.data
	i := s.i + 1
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if i+1 >= len(d) {
				return false
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) {
					return false
				}
				for _, h := range d[i+2 : i+6] {
					if !isHex(h) {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default:
			i++
		}
	}
	return false
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func (s *jsonScanner) number() bool {
	d := s.data
	i := s.i
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return false
		}
		for i < len(d) && isDigit(d[i]) {
			i++
		}
	}
	s.i = i
	return true
}

// literal consumes lit if it is next.
func (s *jsonScanner) literal(lit string) bool {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

func (s *jsonScanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// foldEq reports whether key equals name under ASCII case folding; name
// is ASCII.
func foldEq(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := 0; i < len(key); i++ {
		a, b := key[i], name[i]
		if a == b {
			continue
		}
		if 'a' <= a && a <= 'z' {
			a -= 'a' - 'A'
		}
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// separator reads what follows a member or element: a ',' before the
// next one, or close, which ends the object or array (end true). Anything
// else is not JSON this reader follows (ok false).
func (s *jsonScanner) separator(close byte) (end, ok bool) {
	s.space()
	if s.i >= len(s.data) {
		return false, false
	}
	switch s.data[s.i] {
	case ',':
		s.i++
		s.space()
		return false, true
	case close:
		s.i++
		return true, true
	default:
		return false, false
	}
}
