package audit

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// ChatSession is the audit-safe projection of a SuperOffice ChatSessionEntity.
//
// It deliberately has no fields for SessionKey, the messages, the customer's
// details or the linked Person/Contact/Project/Sale/Ticket: what is never
// decoded can never leak into an audit log, whatever later code does with
// the value.
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

// ErrTooLarge reports a body whose decoded size exceeds maxDecoded. Decoding
// stops at the bound, so a decompression bomb costs at most that much memory.
var ErrTooLarge = errors.New("decoded body exceeds size limit")

const (
	defaultMaxDecoded = 1 << 20
	// maxCodings bounds stacked content codings ("gzip, identity").
	maxCodings = 2
	// zstdHTTPWindow is the window RFC 8878 lets HTTP zstd senders use; a
	// frame may declare less but not more unless maxDecoded allows it.
	zstdHTTPWindow = 8 << 20
	// maxXMLDepth is far deeper than any ChatSessionEntity but stops
	// pathologically nested documents from growing the tokenizer's stack.
	maxXMLDepth = 64
	// maxDateLen is longer than any ISO 8601 date-time .NET writes; longer
	// values are refused before parsing so errors stay short.
	maxDateLen = 64
	// maxQuoted clips header values quoted in error messages.
	maxQuoted = 64
)

// statusNames maps the numeric Status values to their names (SUPEROFFICE.md).
var statusNames = [...]string{
	"Invalid", "PreChatForm", "Faq", "OfflineForm", "InQueue", "CustomerLast",
	"UserLast", "Finished", "Deleted", "Closed", "RequestPosted", "ClosedFromQueue",
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

type mediaFormat uint8

const (
	formatJSON mediaFormat = iota + 1
	formatXML
)

type coding uint8

const (
	codingIdentity coding = iota
	codingGzip
	codingDeflate
	codingZstd
)

func (c coding) String() string {
	switch c {
	case codingGzip:
		return "gzip"
	case codingDeflate:
		return "deflate"
	case codingZstd:
		return "zstd"
	}
	return "identity"
}

// DecodeEntity decodes body (the exact bytes the upstream sent) given the
// response's Content-Type and Content-Encoding header values. It never modifies body.
// maxDecoded bounds the decompressed size (<=0 means 1 MiB).
//
// A zero-length body is ErrNoEntity whatever the headers say, because
// servers commonly omit Content-Type on empty responses.
func DecodeEntity(body []byte, contentType, contentEncoding string, maxDecoded int64) (*ChatSession, error) {
	if maxDecoded <= 0 {
		maxDecoded = defaultMaxDecoded
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("audit: decode entity: empty body: %w", ErrNoEntity)
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
		return nil, fmt.Errorf("audit: decode entity: blank body: %w", ErrNoEntity)
	}
	var raw rawEntity
	if format == formatJSON {
		err = decodeJSON(data, &raw)
	} else {
		err = decodeXML(data, &raw)
	}
	if err != nil {
		return nil, err
	}
	return raw.project()
}

// parseMediaType ignores parameters: the charset is irrelevant because both
// formats are decoded as UTF-8 and anything else fails to parse anyway.
func parseMediaType(contentType string) (mediaFormat, error) {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	typ, sub, ok := strings.Cut(mt, "/")
	if ok && (strings.EqualFold(typ, "application") || strings.EqualFold(typ, "text")) {
		switch {
		case strings.EqualFold(sub, "json") || hasSuffixFold(sub, "+json"):
			return formatJSON, nil
		case strings.EqualFold(sub, "xml") || hasSuffixFold(sub, "+xml"):
			return formatXML, nil
		}
	}
	return 0, fmt.Errorf("audit: decode entity: media type %q: %w", clip(mt), ErrUnsupportedMediaType)
}

// hasSuffixFold requires something before the suffix so that "+json" alone
// is not a structured-syntax type.
func hasSuffixFold(s, suffix string) bool {
	return len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

// parseCodings returns the codings in header order in a fixed array so the
// common case allocates nothing. Empty list elements are skipped as RFC 9110
// requires.
func parseCodings(contentEncoding string) ([maxCodings]coding, int, error) {
	var out [maxCodings]coding
	n := 0
	for rest, more := contentEncoding, true; more; {
		var tok string
		tok, rest, more = strings.Cut(rest, ",")
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		var c coding
		switch {
		case strings.EqualFold(tok, "identity"):
			c = codingIdentity
		case strings.EqualFold(tok, "gzip"), strings.EqualFold(tok, "x-gzip"):
			c = codingGzip
		case strings.EqualFold(tok, "deflate"):
			c = codingDeflate
		case strings.EqualFold(tok, "zstd"):
			c = codingZstd
		default:
			// br is refused because no brotli decoder is in the module graph.
			return out, 0, fmt.Errorf("audit: decode entity: content coding %q: %w", clip(tok), ErrUnsupportedEncoding)
		}
		if n == maxCodings {
			return out, 0, fmt.Errorf("audit: decode entity: content codings %q: more than %d: %w", clip(contentEncoding), maxCodings, ErrUnsupportedEncoding)
		}
		out[n] = c
		n++
	}
	return out, n, nil
}

// decodeContent undoes the content codings (the last applied is listed
// last, so it is undone first). Identity bodies are returned as is, without
// a copy; the decoders below only ever read from body.
func decodeContent(body []byte, codings []coding, maxDecoded int64) ([]byte, error) {
	identity := true
	for _, c := range codings {
		if c != codingIdentity {
			identity = false
		}
	}
	if identity {
		if int64(len(body)) > maxDecoded {
			return nil, fmt.Errorf("audit: decode entity: body of %d bytes exceeds %d: %w", len(body), maxDecoded, ErrTooLarge)
		}
		return body, nil
	}

	var r io.Reader = bytes.NewReader(body)
	for i := len(codings) - 1; i >= 0; i-- {
		var err error
		switch codings[i] {
		case codingGzip:
			r, err = gzip.NewReader(r)
		case codingDeflate:
			r, err = newDeflateReader(r)
		case codingZstd:
			var zr *zstd.Decoder
			zr, err = zstd.NewReader(r,
				// One synchronous decoder: no goroutines, no
				// per-CPU buffers for a body read once.
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderLowmem(true),
				// The history buffer is sized from the declared
				// window, so the window must be bounded too.
				zstd.WithDecoderMaxWindow(uint64(max(zstdHTTPWindow, min(maxDecoded, math.MaxInt32)))),
			)
			if zr != nil {
				defer zr.Close()
			}
			r = zr
		}
		if err != nil {
			return nil, codingError(codings[i].String(), err)
		}
	}
	data, err := readLimited(r, maxDecoded, len(body))
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, codingError(codingList(codings), err)
	}
	return data, nil
}

// codingList names a stack of codings for an error message; the failing
// layer is not known once the readers are chained.
func codingList(codings []coding) string {
	if len(codings) == 1 {
		return codings[0].String()
	}
	parts := make([]string, len(codings))
	for i, c := range codings {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

func codingError(label string, err error) error {
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		// A single-segment frame whose declared content exceeds the window
		// bound, which is never below maxDecoded.
		return fmt.Errorf("audit: decode entity: %s: %w", label, ErrTooLarge)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("audit: decode entity: %s: %w", label, err)
}

// newDeflateReader follows RFC 9110 (deflate means zlib-wrapped) but falls
// back to raw DEFLATE when the first two bytes are not a valid zlib header,
// because some servers (old IIS among them) send raw streams.
func newDeflateReader(r io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(r, 512)
	if h, err := br.Peek(2); err == nil && isZlibHeader(h[0], h[1]) {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && cmf>>4 <= 7 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}

// readLimited reads at most maxDecoded+1 bytes, growing its buffer no
// further than that, so a bomb is detected without holding more than the bound.
func readLimited(r io.Reader, maxDecoded int64, encodedLen int) ([]byte, error) {
	limit := maxDecoded
	if limit < math.MaxInt64 {
		limit++
	}
	// Compressed JSON/XML typically expands 4-10x; start near that to
	// avoid most regrowth without trusting the ratio.
	initial := min(limit, max(512, 8*int64(encodedLen)))
	buf := make([]byte, 0, initial)
	lr := io.LimitReader(r, limit)
	for {
		if len(buf) == cap(buf) {
			if int64(cap(buf)) >= limit {
				break
			}
			grown := make([]byte, len(buf), min(limit, 2*int64(cap(buf))))
			copy(grown, buf)
			buf = grown
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > maxDecoded {
		return nil, fmt.Errorf("audit: decode entity: decoded body exceeds %d bytes: %w", maxDecoded, ErrTooLarge)
	}
	return buf, nil
}

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

// UnmarshalJSON never fails; invalid kinds are reported by project with the
// field name.
func (s *scalar) UnmarshalJSON(b []byte) error {
	switch b[0] {
	case 'n':
		*s = scalar{}
	case '"':
		s.kind = kindString
		if bytes.IndexByte(b, '\\') < 0 {
			s.text = string(b[1 : len(b)-1])
		} else if err := json.Unmarshal(b, &s.text); err != nil {
			return err
		}
	case 't', 'f', '{', '[':
		*s = scalar{kind: kindOther}
	default:
		*s = scalar{text: string(b), kind: kindNumber}
	}
	return nil
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
}

func (e *rawEntity) project() (*ChatSession, error) {
	if !e.hasID {
		return nil, fmt.Errorf("audit: decode entity: no ChatSessionId: %w", ErrNoEntity)
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
		return nil, fmt.Errorf("audit: decode entity: Flags: not a string")
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
		return "", fmt.Errorf("audit: decode entity: Status: not a string or number")
	}
	if s.kind == kindString && !isDigits(s.text) {
		return s.text, nil
	}
	n, err := strconv.ParseInt(s.text, 10, 32)
	if err != nil {
		return "", fmt.Errorf("audit: decode entity: Status: %w", err)
	}
	if n < 0 || n >= int64(len(statusNames)) {
		return "", fmt.Errorf("audit: decode entity: Status: unknown value %d", n)
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
		return time.Time{}, fmt.Errorf("audit: decode entity: %s: date-time is not a string", field)
	}
	text := strings.TrimSpace(s.text)
	if text == "" {
		return time.Time{}, nil
	}
	if len(text) > maxDateLen {
		return time.Time{}, fmt.Errorf("audit: decode entity: %s: date-time of %d bytes is too long", field, len(text))
	}
	t, err := time.Parse("2006-01-02T15:04:05Z07:00", text)
	if err != nil {
		var err2 error
		if t, err2 = time.Parse("2006-01-02T15:04:05", text); err2 != nil {
			return time.Time{}, fmt.Errorf("audit: decode entity: %s: %w", field, err)
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

func decodeJSON(data []byte, out *rawEntity) error {
	if bytes.Equal(data, []byte("null")) {
		return fmt.Errorf("audit: decode entity: JSON null: %w", ErrNoEntity)
	}
	var w jsonEntity
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("audit: decode entity: JSON: %w", err)
	}
	*out = rawEntity{
		topicID:         w.TopicID,
		initialQueuePos: w.InitialQueuePos,
		alertLevel:      w.AlertLevel,
		rank:            w.Rank,
		rating:          w.Rating,
		chatbotIsActive: w.ChatbotIsActive,
		status:          w.Status,
		flags:           w.Flags,
		whenRequested:   w.WhenRequested,
		whenStarted:     w.WhenStarted,
		whenEnded:       w.WhenEnded,
		whenIdle:        w.WhenIdle,
	}
	if w.ID != nil {
		out.hasID, out.id = true, *w.ID
	}
	if w.User != nil {
		out.user = w.User.AssociateID
	}
	if w.TransferTo != nil {
		out.transferTo = w.TransferTo.AssociateID
	}
	return nil
}

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
		return nil, fmt.Errorf("audit: decode entity: XML: %w", err)
	}
	switch tok.(type) {
	case xml.StartElement:
		x.depth++
		if x.depth > maxXMLDepth {
			return nil, fmt.Errorf("audit: decode entity: XML: nesting deeper than %d", maxXMLDepth)
		}
	case xml.EndElement:
		x.depth--
	case xml.Directive:
		// encoding/xml never expands external entities, but a DTD has no
		// place in a WebAPI response and is refused outright.
		return nil, fmt.Errorf("audit: decode entity: XML: %w", errXMLDirective)
	}
	return tok, nil
}

// nextOrUnexpected turns EOF inside an element into an error.
func (x *xmlReader) nextOrUnexpected() (xml.Token, error) {
	tok, err := x.next()
	if err == io.EOF {
		return nil, fmt.Errorf("audit: decode entity: XML: %w", io.ErrUnexpectedEOF)
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
			return "", fmt.Errorf("audit: decode entity: XML: %s: unexpected element <%s>", field, clip(t.Name.Local))
		case xml.EndElement:
			if n > 1 {
				s = string(buf)
			}
			return strings.TrimSpace(s), nil
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
		return 0, false, fmt.Errorf("audit: decode entity: XML: %s: %w", field, err)
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

	var root xml.StartElement
prolog:
	for {
		tok, err := x.next()
		if err == io.EOF {
			return fmt.Errorf("audit: decode entity: XML: no root element: %w", ErrNoEntity)
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			root = t
			break prolog
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fmt.Errorf("audit: decode entity: XML: text before the root element")
			}
		}
	}
	if !strings.EqualFold(root.Name.Local, "ChatSessionEntity") {
		return fmt.Errorf("audit: decode entity: XML root <%s>: %w", clip(root.Name.Local), ErrNoEntity)
	}
	if isNil(root.Attr) {
		return fmt.Errorf("audit: decode entity: XML root is nil: %w", ErrNoEntity)
	}

	for {
		tok, err := x.nextOrUnexpected()
		if err != nil {
			return err
		}
		if _, ok := tok.(xml.EndElement); ok {
			break
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		f, name := lookupXMLField(se.Name.Local)
		null := isNil(se.Attr)
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
		if err != nil {
			return err
		}
	}

	// Whatever follows the root must be ignorable; encoding/xml would
	// otherwise accept a second root or a trailing DTD.
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
			return fmt.Errorf("audit: decode entity: XML: content after the root element")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fmt.Errorf("audit: decode entity: XML: text after the root element")
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
	return false, fmt.Errorf("audit: decode entity: XML: %s: invalid boolean %q", field, clip(s))
}

// clip keeps upstream-controlled strings in error messages short.
func clip(s string) string {
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "..."
	}
	return s
}
