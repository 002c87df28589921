package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
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
// members refer to their values by position, as append may move it.
type canonBuf struct {
	b   []byte
	err error
	// stack holds the members of the objects being built, innermost
	// last: objects nest, so one slice serves them all.
	stack []pendingMember
}

type span struct{ start, end int }

type pendingMember struct {
	name string
	val  span
	sub  []pendingMember // resetguard's members, kept open at the top level
	open bool
}

// canonObject collects one object's members, buf.stack[base:].
type canonObject struct {
	buf  *canonBuf
	base int
	// top: this is the record itself, whose resetguard member stays open
	// so that the chain can be inserted into it.
	top bool
	// ns is the namespace opened last (zap's OpenNamespace): later fields
	// go into it.
	ns *canonObject
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

func (o *canonObject) child() *canonObject { return &canonObject{buf: o.buf, base: len(o.buf.stack)} }

// close sorts the members (a repeated name keeps its last value, as a
// decoder would) and writes the object, returning where it is.
func (o *canonObject) close() span {
	o.settle()
	members := sortMembers(o.members())
	start := len(o.buf.b)
	o.buf.b = append(o.buf.b, '{')
	for i, m := range members {
		if i > 0 {
			o.buf.b = append(o.buf.b, ',')
		}
		o.buf.b = appendCanonString(o.buf.b, m.name)
		o.buf.b = append(o.buf.b, ':')
		o.buf.b = append(o.buf.b, o.buf.b[m.val.start:m.val.end]...)
	}
	o.buf.b = append(o.buf.b, '}')
	o.buf.stack = o.buf.stack[:o.base]
	return span{start, len(o.buf.b)}
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

func sortMembers(ms []pendingMember) []pendingMember {
	slices.SortStableFunc(ms, func(a, b pendingMember) int { return strings.Compare(a.name, b.name) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].name == m.name {
			continue
		}
		out = append(out, m)
	}
	return out
}

func (o *canonObject) AddObject(key string, m zapcore.ObjectMarshaler) error {
	t := o.target()
	child := t.child()
	if err := m.MarshalLogObject(child); err != nil {
		return err
	}
	if t.top && key == "resetguard" {
		// Left open for the chain, which the canonical form leaves out.
		child.settle()
		sub := slices.DeleteFunc(slices.Clone(child.members()), func(p pendingMember) bool { return p.name == "chain" })
		t.buf.stack = append(t.buf.stack[:child.base], pendingMember{name: key, sub: sub, open: true})
		return nil
	}
	start := child.close().start
	t.end(key, start)
	return nil
}

func (o *canonObject) AddArray(key string, m zapcore.ArrayMarshaler) error {
	t := o.target()
	arr := &canonArray{buf: t.buf}
	if err := m.MarshalLogArray(arr); err != nil {
		return err
	}
	start := arr.close().start
	t.end(key, start)
	return nil
}

func (o *canonObject) AddString(key, v string) {
	t, start := o.begin()
	t.buf.b = appendCanonString(t.buf.b, v)
	t.end(key, start)
}
func (o *canonObject) AddByteString(key string, v []byte) { o.AddString(key, string(v)) }
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

// canonArray collects one array's elements.
type canonArray struct {
	buf   *canonBuf
	elems []span
}

func (a *canonArray) end(start int) {
	if a.elems == nil {
		a.elems = make([]span, 0, 4)
	}
	a.elems = append(a.elems, span{start, len(a.buf.b)})
}

func (a *canonArray) close() span {
	start := len(a.buf.b)
	a.buf.b = append(a.buf.b, '[')
	for i, e := range a.elems {
		if i > 0 {
			a.buf.b = append(a.buf.b, ',')
		}
		a.buf.b = append(a.buf.b, a.buf.b[e.start:e.end]...)
	}
	a.buf.b = append(a.buf.b, ']')
	return span{start, len(a.buf.b)}
}

func (a *canonArray) AppendString(v string) {
	start := len(a.buf.b)
	a.buf.b = appendCanonString(a.buf.b, v)
	a.end(start)
}
func (a *canonArray) AppendByteString(v []byte) { a.AppendString(string(v)) }
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
	child := &canonObject{buf: a.buf, base: len(a.buf.stack)}
	if err := m.MarshalLogObject(child); err != nil {
		return err
	}
	a.end(child.close().start)
	return nil
}
func (a *canonArray) AppendArray(m zapcore.ArrayMarshaler) error {
	child := &canonArray{buf: a.buf}
	if err := m.MarshalLogArray(child); err != nil {
		return err
	}
	a.end(child.close().start)
	return nil
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
// plain printable ASCII as is; anything else through encoding/json itself
// without HTML escaping, so that escapes (\u2028, \b, \f, …) are exactly
// its own, after replacing invalid UTF-8 bytes as zap does.
func appendCanonString(dst []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	if !utf8.ValidString(s) {
		// zap writes each invalid byte as U+FFFD, which the reference
		// decode reads back as that character.
		var b strings.Builder
		for i := 0; i < len(s); {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.WriteString(s[i : i+n])
			}
			i += n
		}
		s = b.String()
	}
	var out bytes.Buffer
	je := json.NewEncoder(&out)
	je.SetEscapeHTML(false)
	_ = je.Encode(s) // a string always encodes
	return append(dst, bytes.TrimSuffix(out.Bytes(), []byte{'\n'})...)
}

// recordEncoder writes a record's fields and nothing else: no time, level,
// message, logger name or caller keys. EncodeEntry does not change the
// encoder, so one serves every goroutine.
var recordEncoder = zapcore.NewJSONEncoder(zapcore.EncoderConfig{
	LineEnding:     "\n",
	EncodeDuration: zapcore.NanosDurationEncoder,
	EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
})
