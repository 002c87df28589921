package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// Canonical encoding without a round trip.
//
// The chain's canonical JSON is defined (see chain.go) as the record's zap
// JSON encoding decoded and re-encoded by encoding/json with sorted keys.
// Doing exactly that costs a decode and a reflective encode per record,
// most of the durable sink's time. canonObject is a zapcore.ObjectEncoder
// that writes the same bytes directly: values in encoding/json's form,
// members sorted when their object closes. What the record writes
// (strings, integers, booleans, objects, arrays of strings, null) is
// encoded natively; anything else goes through the reference path for
// that one value, so the two cannot drift apart. TestCanonicalMatchesReference
// holds them together.

// canonBuf is the buffer every value of one document is appended to;
// members refer to their values by position, as append may move it. It
// is pooled (canonPool) with its scratch space, so that encoding a record
// allocates next to nothing.
type canonBuf struct {
	b   []byte
	err error
	// stack holds the members of the objects being built, innermost
	// last: objects nest, so one slice serves them all. elems does the
	// same for arrays.
	stack []pendingMember
	elems []span
	// order is close's scratch for sorting a member list.
	order []int32
	// objs and arrs are the encoders of the objects and arrays being
	// built, reused by depth (they nest strictly); depth counts objs in
	// use, adepth arrs.
	objs          [maxDepth]canonObject
	arrs          [maxDepth]canonArray
	depth, adepth int
	// The top-level resetguard object, once closed: its place (rg), and
	// where resetguard.chain goes in b (rgAt, moved along when the record
	// copies resetguard into its own place) with the commas the insertion
	// needs (see canonDoc).
	rg      span
	rgAt    int
	rgLead  bool
	rgTrail bool
	rgSeen  bool
	// doc is the document newCanonDoc returns; line, the line sealed from
	// it. Both go back to the pool with the buffer.
	doc  canonDoc
	line []byte
}

// maxDepth bounds the reused encoders; deeper nesting (never in a
// record) allocates its own.
const maxDepth = 16

type span struct{ start, end int }

type pendingMember struct {
	name string
	val  span
}

// canonObject collects one object's members, buf.stack[base:].
type canonObject struct {
	buf  *canonBuf
	base int
	// top: this is the record itself. rg: this is the record's
	// resetguard object, where resetguard.chain, which the canonical form
	// leaves out, goes.
	top, rg bool
	// ns is the namespace opened last (zap's OpenNamespace): later fields
	// go into it.
	ns *canonObject
	// pooled: this encoder is buf.objs[...], to be handed back on close.
	pooled bool
}

var (
	_ zapcore.ObjectEncoder = (*canonObject)(nil)
	_ zapcore.ArrayEncoder  = (*canonArray)(nil)
)

func (o *canonObject) target() *canonObject {
	for o.ns != nil {
		o = o.ns
	}
	return o
}

// begin and end bracket one member's value, appended to the buffer in
// between.
func (o *canonObject) begin() (*canonObject, int) {
	t := o.target()
	return t, len(t.buf.b)
}

func (o *canonObject) end(name string, start int) {
	o.buf.stack = append(o.buf.stack, pendingMember{name: name, val: span{start, len(o.buf.b)}})
}

func (o *canonObject) members() []pendingMember { return o.buf.stack[o.base:] }

// child is the encoder of an object nested in o, the buffer's own while
// the nesting is shallow.
func (o *canonObject) child() *canonObject { return o.buf.object() }

// object is the encoder of a new object, the buffer's own while the
// nesting is shallow.
func (b *canonBuf) object() *canonObject {
	if b.depth < maxDepth {
		c := &b.objs[b.depth]
		b.depth++
		*c = canonObject{buf: b, base: len(b.stack), pooled: true}
		return c
	}
	return &canonObject{buf: b, base: len(b.stack)}
}

// close sorts the members (a repeated name keeps its last value, as a
// decoder would) and writes the object, returning where it is.
func (o *canonObject) close() span {
	o.settle()
	b := o.buf
	members := b.stack[o.base:]
	order := b.sortedOrder(members)
	out := b.b
	start := len(out)
	out = append(out, '{')
	n := 0
	at, lead, trail := -1, false, false
	for _, i := range order {
		m := &members[i]
		if o.rg {
			if m.name == "chain" {
				continue // the chain is not part of what it hashes
			}
			if at < 0 && m.name > "chain" {
				at, lead, trail = len(out), n > 0, n == 0
			}
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = appendCanonString(out, m.name)
		out = append(out, ':')
		if o.top && m.name == "resetguard" && b.rgSeen && m.val == b.rg {
			// Where the chain goes, now that resetguard has its place.
			b.rgAt += len(out) - m.val.start
		}
		out = append(out, out[m.val.start:m.val.end]...)
	}
	if o.rg && at < 0 {
		at, lead, trail = len(out), n > 0, false
	}
	out = append(out, '}')
	b.b = out
	b.stack = b.stack[:o.base]
	if o.pooled {
		b.depth--
	}
	v := span{start, len(out)}
	if o.rg {
		b.rg, b.rgAt, b.rgLead, b.rgTrail, b.rgSeen = v, at, lead, trail, true
	}
	return v
}

// sortedOrder returns the positions of members in name order, a repeated
// name once, at its last position. Sorting positions rather than the
// members themselves moves no strings; lists are short (at most about 20),
// so an insertion sort does.
func (b *canonBuf) sortedOrder(members []pendingMember) []int32 {
	order := b.order[:0]
	for i := range members {
		j := len(order)
		order = append(order, int32(i))
		// Stable: an equal name goes after the ones already placed.
		for j > 0 && members[order[j-1]].name > members[i].name {
			order[j] = order[j-1]
			j--
		}
		order[j] = int32(i)
	}
	b.order = order
	out := order[:0]
	for k, i := range order {
		if k+1 < len(order) && members[order[k+1]].name == members[i].name {
			continue
		}
		out = append(out, i)
	}
	return out
}

// settle closes an open namespace into the member OpenNamespace added.
func (o *canonObject) settle() {
	if o.ns == nil {
		return
	}
	ns := o.ns
	o.ns = nil
	v := ns.close()
	o.buf.stack[ns.base-1].val = v // the member OpenNamespace added
}

func (o *canonObject) AddObject(key string, m zapcore.ObjectMarshaler) error {
	t := o.target()
	child := t.child()
	child.rg = t.top && key == "resetguard"
	// As zap's JSON encoder does, a marshaler's error still leaves the
	// object as far as it was written; the error is the caller's.
	err := m.MarshalLogObject(child)
	start := child.close().start
	t.end(key, start)
	return err
}

func (o *canonObject) AddArray(key string, m zapcore.ArrayMarshaler) error {
	t := o.target()
	arr := t.buf.array()
	err := m.MarshalLogArray(arr)
	start := arr.close().start
	t.end(key, start)
	return err
}

func (o *canonObject) AddString(key, v string) {
	t, start := o.begin()
	t.buf.b = appendCanonString(t.buf.b, v)
	t.end(key, start)
}
func (o *canonObject) AddByteString(key string, v []byte) {
	t, start := o.begin()
	t.buf.b = appendCanonString(t.buf.b, v)
	t.end(key, start)
}

// addTime writes t in UTC as RFC 3339 with nanoseconds, the string the
// record's other encoders write: plain ASCII, so it needs no escaping.
func (o *canonObject) addTime(key string, t time.Time) {
	o, start := o.begin()
	b := append(o.buf.b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	o.buf.b = append(b, '"')
	o.end(key, start)
}

func (o *canonObject) AddBool(key string, v bool) {
	t, start := o.begin()
	t.buf.b = strconv.AppendBool(t.buf.b, v)
	t.end(key, start)
}
func (o *canonObject) AddInt64(key string, v int64) {
	t, start := o.begin()
	t.buf.b = strconv.AppendInt(t.buf.b, v, 10)
	t.end(key, start)
}
func (o *canonObject) AddInt(key string, v int)     { o.AddInt64(key, int64(v)) }
func (o *canonObject) AddInt32(key string, v int32) { o.AddInt64(key, int64(v)) }
func (o *canonObject) AddInt16(key string, v int16) { o.AddInt64(key, int64(v)) }
func (o *canonObject) AddInt8(key string, v int8)   { o.AddInt64(key, int64(v)) }
func (o *canonObject) AddUint64(key string, v uint64) {
	t, start := o.begin()
	t.buf.b = strconv.AppendUint(t.buf.b, v, 10)
	t.end(key, start)
}
func (o *canonObject) AddUint(key string, v uint)       { o.AddUint64(key, uint64(v)) }
func (o *canonObject) AddUint32(key string, v uint32)   { o.AddUint64(key, uint64(v)) }
func (o *canonObject) AddUint16(key string, v uint16)   { o.AddUint64(key, uint64(v)) }
func (o *canonObject) AddUint8(key string, v uint8)     { o.AddUint64(key, uint64(v)) }
func (o *canonObject) AddUintptr(key string, v uintptr) { o.AddUint64(key, uint64(v)) }

// The rest is not written by a Record; it takes the reference path.
func (o *canonObject) AddBinary(key string, v []byte) {
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.BinaryType, Interface: v})
}
func (o *canonObject) AddComplex128(key string, v complex128) {
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.Complex128Type, Interface: v})
}
func (o *canonObject) AddComplex64(key string, v complex64) {
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.Complex64Type, Interface: v})
}
func (o *canonObject) AddDuration(key string, v time.Duration) {
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.DurationType, Integer: int64(v)})
}
func (o *canonObject) AddFloat64(key string, v float64) {
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.ReflectType, Interface: v})
}
func (o *canonObject) AddFloat32(key string, v float32) { o.AddFloat64(key, float64(v)) }
func (o *canonObject) AddTime(key string, v time.Time) {
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.ReflectType, Interface: v})
}

// AddReflected writes nil natively (the record's null) and anything else
// through the reference path.
func (o *canonObject) AddReflected(key string, v any) error {
	if v == nil {
		t, start := o.begin()
		t.buf.b = append(t.buf.b, "null"...)
		t.end(key, start)
		return nil
	}
	o.viaZap(key, zapcore.Field{Key: key, Type: zapcore.ReflectType, Interface: v})
	return o.buf.err
}

func (o *canonObject) OpenNamespace(key string) {
	t := o.target()
	t.buf.stack = append(t.buf.stack, pendingMember{name: key})
	t.ns = t.child()
}

// viaZap encodes one field the reference way: zap's JSON, decoded with
// json.Number, re-encoded by encoding/json.
func (o *canonObject) viaZap(key string, f zapcore.Field) {
	v, err := referenceValue(f)
	if err != nil {
		if o.buf.err == nil {
			o.buf.err = err
		}
		v = []byte("null")
	}
	t, start := o.begin()
	t.buf.b = append(t.buf.b, v...)
	t.end(key, start)
}

func referenceValue(f zapcore.Field) ([]byte, error) {
	f.Key = "v"
	enc, err := recordEncoder.EncodeEntry(zapcore.Entry{}, []zapcore.Field{f})
	if err != nil {
		return nil, fmt.Errorf("audit: encoding a field: %w", err)
	}
	defer enc.Free()
	m, err := decodeObject(enc.Bytes())
	if err != nil {
		return nil, fmt.Errorf("audit: re-reading a field: %w", err)
	}
	var out bytes.Buffer
	je := json.NewEncoder(&out)
	je.SetEscapeHTML(false)
	if err := je.Encode(m["v"]); err != nil {
		return nil, fmt.Errorf("audit: encoding a field: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte{'\n'}), nil
}

// canonArray collects one array's elements, buf.elems[base:].
type canonArray struct {
	buf    *canonBuf
	base   int
	pooled bool
}

// array is the encoder of a new array, the buffer's own while the
// nesting is shallow.
func (b *canonBuf) array() *canonArray {
	if b.adepth < maxDepth {
		a := &b.arrs[b.adepth]
		b.adepth++
		*a = canonArray{buf: b, base: len(b.elems), pooled: true}
		return a
	}
	return &canonArray{buf: b, base: len(b.elems)}
}

func (a *canonArray) end(start int) {
	a.buf.elems = append(a.buf.elems, span{start, len(a.buf.b)})
}

func (a *canonArray) close() span {
	b := a.buf
	out := b.b
	start := len(out)
	out = append(out, '[')
	for i, e := range b.elems[a.base:] {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, out[e.start:e.end]...)
	}
	out = append(out, ']')
	b.b = out
	b.elems = b.elems[:a.base]
	if a.pooled {
		b.adepth--
	}
	return span{start, len(out)}
}

func (a *canonArray) AppendString(v string) {
	start := len(a.buf.b)
	a.buf.b = appendCanonString(a.buf.b, v)
	a.end(start)
}
func (a *canonArray) AppendByteString(v []byte) {
	start := len(a.buf.b)
	a.buf.b = appendCanonString(a.buf.b, v)
	a.end(start)
}
func (a *canonArray) AppendBool(v bool) {
	start := len(a.buf.b)
	a.buf.b = strconv.AppendBool(a.buf.b, v)
	a.end(start)
}
func (a *canonArray) AppendInt64(v int64) {
	start := len(a.buf.b)
	a.buf.b = strconv.AppendInt(a.buf.b, v, 10)
	a.end(start)
}
func (a *canonArray) AppendInt(v int)     { a.AppendInt64(int64(v)) }
func (a *canonArray) AppendInt32(v int32) { a.AppendInt64(int64(v)) }
func (a *canonArray) AppendInt16(v int16) { a.AppendInt64(int64(v)) }
func (a *canonArray) AppendInt8(v int8)   { a.AppendInt64(int64(v)) }
func (a *canonArray) AppendUint64(v uint64) {
	start := len(a.buf.b)
	a.buf.b = strconv.AppendUint(a.buf.b, v, 10)
	a.end(start)
}
func (a *canonArray) AppendUint(v uint)       { a.AppendUint64(uint64(v)) }
func (a *canonArray) AppendUint32(v uint32)   { a.AppendUint64(uint64(v)) }
func (a *canonArray) AppendUint16(v uint16)   { a.AppendUint64(uint64(v)) }
func (a *canonArray) AppendUint8(v uint8)     { a.AppendUint64(uint64(v)) }
func (a *canonArray) AppendUintptr(v uintptr) { a.AppendUint64(uint64(v)) }
func (a *canonArray) AppendObject(m zapcore.ObjectMarshaler) error {
	child := a.buf.object()
	err := m.MarshalLogObject(child)
	a.end(child.close().start)
	return err
}
func (a *canonArray) AppendArray(m zapcore.ArrayMarshaler) error {
	child := a.buf.array()
	err := m.MarshalLogArray(child)
	a.end(child.close().start)
	return err
}
func (a *canonArray) AppendComplex128(v complex128) {
	a.viaZap(zapcore.Field{Type: zapcore.Complex128Type, Interface: v})
}
func (a *canonArray) AppendComplex64(v complex64) {
	a.viaZap(zapcore.Field{Type: zapcore.Complex64Type, Interface: v})
}
func (a *canonArray) AppendFloat64(v float64) {
	a.viaZap(zapcore.Field{Type: zapcore.ReflectType, Interface: v})
}
func (a *canonArray) AppendFloat32(v float32) { a.AppendFloat64(float64(v)) }
func (a *canonArray) AppendDuration(v time.Duration) {
	a.viaZap(zapcore.Field{Type: zapcore.DurationType, Integer: int64(v)})
}
func (a *canonArray) AppendTime(v time.Time) {
	a.viaZap(zapcore.Field{Type: zapcore.ReflectType, Interface: v})
}
func (a *canonArray) AppendReflected(v any) error {
	if v == nil {
		start := len(a.buf.b)
		a.buf.b = append(a.buf.b, "null"...)
		a.end(start)
		return nil
	}
	a.viaZap(zapcore.Field{Type: zapcore.ReflectType, Interface: v})
	return a.buf.err
}

func (a *canonArray) viaZap(f zapcore.Field) {
	v, err := referenceValue(f)
	if err != nil {
		if a.buf.err == nil {
			a.buf.err = err
		}
		v = []byte("null")
	}
	start := len(a.buf.b)
	a.buf.b = append(a.buf.b, v...)
	a.end(start)
}

// appendCanonString appends s as the reference path ends up writing it:
// as is when encoding/json would write it unchanged (valid UTF-8 without
// control characters, '"', '\\', U+2028 or U+2029); anything else through
// encoding/json itself without HTML escaping, so that escapes (\u2028, \b,
// \f, …) are exactly its own, after replacing invalid UTF-8 bytes as zap
// does.
func appendCanonString[S string | []byte](dst []byte, s S) []byte {
	if plainString(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	str := string(s)
	if !utf8.ValidString(str) {
		// zap writes each invalid byte as U+FFFD, which the reference
		// decode reads back as that character.
		var b strings.Builder
		for i := 0; i < len(str); {
			r, n := utf8.DecodeRuneInString(str[i:])
			if r == utf8.RuneError && n == 1 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.WriteString(str[i : i+n])
			}
			i += n
		}
		str = b.String()
	}
	var out bytes.Buffer
	je := json.NewEncoder(&out)
	je.SetEscapeHTML(false)
	_ = je.Encode(str) // a string always encodes
	return append(dst, bytes.TrimSuffix(out.Bytes(), []byte{'\n'})...)
}

// plainString reports whether encoding/json (without HTML escaping)
// writes s between quotes unchanged: it escapes only control
// characters, '"' and '\\', invalid UTF-8, and U+2028 and U+2029.
func plainString[S string | []byte](s S) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if ascii {
		return true
	}
	str := string(s) // a copy only for a []byte, which a record never writes
	return utf8.ValidString(str) && !strings.Contains(str, "\u2028") && !strings.Contains(str, "\u2029")
}

// recordEncoder writes a record's fields and nothing else: no time, level,
// message, logger name or caller keys. EncodeEntry does not change the
// encoder, so one serves every goroutine.
var recordEncoder = zapcore.NewJSONEncoder(zapcore.EncoderConfig{
	LineEnding:     "\n",
	EncodeDuration: zapcore.NanosDurationEncoder,
	EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
})
