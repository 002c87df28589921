package superoffice

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ChatSession is the audit-safe projection of a SuperOffice
// ChatSessionEntity, the chat_session block of the audit record.
//
// It deliberately has no fields for SessionKey, the messages, the
// customer's details or the linked Person/Contact/Project/Sale/Ticket:
// what is never decoded into it can never leak into an audit log,
// whatever later code does with the value.
type ChatSession struct {
	// ID is ChatSessionId, the key an audit trail is correlated on.
	ID int32
	// TopicID is TopicId; routing and queue rules are per topic.
	TopicID int32
	// Status is the enum name as sent, e.g. "InQueue"; a numeric value
	// (0..11) is mapped to its name so rules only ever compare names.
	Status string
	// ChatbotIsActive tells whether the bot still owns the session; a
	// hand-off to humans clears it.
	ChatbotIsActive bool
	// UserAssociateID is User.AssociateId, nil when User is null or absent,
	// so "no agent" cannot be confused with associate 0.
	UserAssociateID *int32
	// TransferToAssociateID is TransferTo.AssociateId, nil when null or absent.
	TransferToAssociateID *int32
	// InitialQueuePos is the queue position when the session was requested.
	InitialQueuePos int32
	// AlertLevel is kept because escalations show up here.
	AlertLevel int32
	// Rank is the agent-local colour index, kept for correlation with the UI.
	Rank int32
	// Flags is the flag set as sent; how an empty set is rendered is not
	// documented, so it is not interpreted. A JSON number is kept as its
	// literal text.
	Flags string
	// Rating is the customer's rating (newer versions only; 0 when absent).
	Rating int32
	// WhenRequested, WhenStarted, WhenEnded and WhenIdle are in UTC so records
	// from servers in different zones compare directly; they are the zero
	// time when absent, null or .NET's DateTime.MinValue.
	WhenRequested, WhenStarted, WhenEnded, WhenIdle time.Time
}

// Entity is one ChatSessionEntity, decoded once: the audit facts and the
// raw values of the customer fields that were asked for.
type Entity struct {
	// Session holds the audit-safe facts.
	Session *ChatSession
	// Customer maps the customer fields asked for (by SuperOffice name,
	// see CustomerFields) to their text as sent; absent and null fields
	// are left out. Nil when none was asked for, so that by default no
	// customer data is decoded at all.
	Customer map[string]string
	// CustomerErr reports a customer field asked for whose value is not
	// a string. The session facts are still good; the customer values
	// are not to be used.
	CustomerErr error
}

// DecodeOptions tune DecodeEntity.
type DecodeOptions struct {
	// MaxDecoded bounds the body after content decoding; <=0 means 1 MiB.
	MaxDecoded int64
	// Customer names the customer fields (CustomerFields, matched
	// case-insensitively) whose values Entity.Customer is to carry.
	Customer []string
}

// ErrNoEntity reports a body that carries no chat session: JSON null, an
// empty body, an object without ChatSessionId or an XML document whose root
// is not a (non-nil) ChatSessionEntity. It exists because the Agents API
// answers failures with 200 and null or {"Message": ..., "MessageDetail": ...},
// so a 200 status alone does not mean the reset happened.
var ErrNoEntity = errors.New("no chat session entity in body")

// ErrUnsupportedMediaType reports a Content-Type other than JSON or XML
// (application/json, text/json, application/xml, text/xml or a +json/+xml
// suffix type); anything else cannot be a ChatSessionEntity and is not guessed at.
var ErrUnsupportedMediaType = errors.New("unsupported media type")

// ErrUnsupportedEncoding reports a Content-Encoding that is not identity,
// gzip, x-gzip, deflate or zstd, or a stack of more than two codings; deeper
// stacks have no legitimate use and only multiply decompression work.
var ErrUnsupportedEncoding = errors.New("unsupported content encoding")

// ErrTooLarge reports a body whose decoded size exceeds the bound. Decoding
// stops at the bound, so a decompression bomb costs at most that much memory.
var ErrTooLarge = errors.New("decoded body exceeds size limit")

// errPrefix starts every DecodeEntity error, so that a record's
// entity_error says what failed.
const errPrefix = "superoffice: decode entity: "

const (
	defaultMaxDecoded = 1 << 20
	// maxDateLen is longer than any ISO 8601 date-time .NET writes; longer
	// values are refused before parsing so errors stay short.
	maxDateLen = 64
	// maxQuoted clips upstream-controlled strings quoted in errors.
	maxQuoted = 64
)

// statusNames maps the numeric Status values to their names (SUPEROFFICE.md).
var statusNames = [...]string{
	"Invalid", "PreChatForm", "Faq", "OfflineForm", "InQueue", "CustomerLast",
	"UserLast", "Finished", "Deleted", "Closed", "RequestPosted", "ClosedFromQueue",
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// DecodeEntity decodes body (the exact bytes the upstream sent) given the
// response's Content-Type and Content-Encoding header values, once, into
// the audit facts and the customer fields opts asks for. It never
// modifies body.
//
// A zero-length body is ErrNoEntity whatever the headers say, because
// servers commonly omit Content-Type on empty responses.
func DecodeEntity(body []byte, contentType, contentEncoding string, opts DecodeOptions) (*Entity, error) {
	maxDecoded := opts.MaxDecoded
	if maxDecoded <= 0 {
		maxDecoded = defaultMaxDecoded
	}
	if len(body) == 0 {
		return nil, fmt.Errorf(errPrefix+"empty body: %w", ErrNoEntity)
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
	if len(data) == 0 {
		return nil, fmt.Errorf(errPrefix+"blank body: %w", ErrNoEntity)
	}
	raw := rawEntity{customer: newCustomerSet(opts.Customer)}
	if format == formatJSON {
		err = decodeJSON(data, &raw)
	} else {
		err = decodeXML(data, &raw)
	}
	if err != nil {
		return nil, err
	}
	cs, err := raw.project()
	if err != nil {
		return nil, err
	}
	e := &Entity{Session: cs}
	e.Customer, e.CustomerErr = raw.customer.result()
	return e, nil
}

// rawEntity is the wire form shared by both formats before Status, Flags
// and the dates are interpreted.
type rawEntity struct {
	hasID                                           bool
	id, topicID, initialQueuePos, alertLevel        int32
	rank, rating                                    int32
	chatbotIsActive                                 bool
	user, transferTo                                *int32
	status, flags                                   scalar
	whenRequested, whenStarted, whenEnded, whenIdle scalar
	customer                                        *customerSet
}

func (e *rawEntity) project() (*ChatSession, error) {
	if !e.hasID {
		return nil, fmt.Errorf(errPrefix+"no ChatSessionId: %w", ErrNoEntity)
	}
	cs := &ChatSession{
		ID:                    e.id,
		TopicID:               e.topicID,
		ChatbotIsActive:       e.chatbotIsActive,
		UserAssociateID:       e.user,
		TransferToAssociateID: e.transferTo,
		InitialQueuePos:       e.initialQueuePos,
		AlertLevel:            e.alertLevel,
		Rank:                  e.rank,
		Rating:                e.rating,
	}
	var err error
	if cs.Status, err = statusName(e.status); err != nil {
		return nil, err
	}
	switch e.flags.kind {
	case kindString, kindNumber:
		cs.Flags = e.flags.text
	case kindOther:
		return nil, errors.New(errPrefix + "Flags: not a string")
	}
	for _, d := range [...]struct {
		name string
		in   *scalar
		out  *time.Time
	}{
		{"WhenRequested", &e.whenRequested, &cs.WhenRequested},
		{"WhenStarted", &e.whenStarted, &cs.WhenStarted},
		{"WhenEnded", &e.whenEnded, &cs.WhenEnded},
		{"WhenIdle", &e.whenIdle, &cs.WhenIdle},
	} {
		if *d.out, err = parseWhen(d.name, *d.in); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// statusName maps numbers (JSON numbers or all-digit text) to names so
// rules never have to handle both spellings; names are kept as sent.
func statusName(s scalar) (string, error) {
	switch s.kind {
	case kindNull:
		return "", nil
	case kindOther:
		return "", errors.New(errPrefix + "Status: not a string or number")
	}
	if s.kind == kindString && !isDigits(s.text) {
		return s.text, nil
	}
	n, err := strconv.ParseInt(s.text, 10, 32)
	if err != nil {
		return "", fmt.Errorf(errPrefix+"Status: %w", err)
	}
	if n < 0 || n >= int64(len(statusNames)) {
		return "", fmt.Errorf(errPrefix+"Status: unknown value %d", n)
	}
	return statusNames[n], nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseWhen accepts the three renderings SuperOffice uses: with an offset,
// with Z, and without a zone (the default, which is taken as UTC). Go's
// parser accepts an optional fraction of any length after the seconds, so
// two layouts cover 0-7 fractional digits.
func parseWhen(field string, s scalar) (time.Time, error) {
	switch s.kind {
	case kindNull:
		return time.Time{}, nil
	case kindNumber, kindOther:
		return time.Time{}, fmt.Errorf(errPrefix+"%s: date-time is not a string", field)
	}
	text := strings.TrimSpace(s.text)
	if text == "" {
		return time.Time{}, nil
	}
	if len(text) > maxDateLen {
		return time.Time{}, fmt.Errorf(errPrefix+"%s: date-time of %d bytes is too long", field, len(text))
	}
	t, err := time.Parse("2006-01-02T15:04:05Z07:00", text)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse("2006-01-02T15:04:05", text); err2 != nil {
			return time.Time{}, fmt.Errorf(errPrefix+"%s: %w", field, err)
		}
	}
	// DateTime.MinValue is how .NET says "never"; with an offset it would
	// otherwise become a non-zero instant in year 0.
	if y, m, d := t.Date(); y == 1 && m == 1 && d == 1 {
		if h, mi, sec := t.Clock(); h == 0 && mi == 0 && sec == 0 && t.Nanosecond() == 0 {
			return time.Time{}, nil
		}
	}
	return t.UTC(), nil
}

// clip keeps upstream-controlled strings in error messages short.
func clip(s string) string {
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "..."
	}
	return s
}
