package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// canonDoc is a record's canonical JSON kept as its encoded members, so
// that it can be written with and without resetguard.chain without
// encoding it twice.
type canonDoc struct {
	buf []byte        // the encoded keys and values the members point into
	top []canonMember // sorted by name
	rg  int           // index of "resetguard" in top
	// pooled is where buf came from, when it came from canonPool.
	pooled *canonBuf
}

type canonMember struct {
	name     string
	key, val []byte
	sub      []canonMember // for resetguard only: its members, without chain
}

// keyedMember is a member whose key and value are still positions in a
// buffer that may move as it grows.
type keyedMember struct {
	name     string
	key, val span
	sub      []keyedMember // resetguard's members, without chain
}

// resolveDoc takes the members' slices of buf once it has stopped
// growing; rg is resetguard's index in members.
func resolveDoc(buf []byte, members []keyedMember, rg int) *canonDoc {
	at := func(s span) []byte { return buf[s.start:s.end:s.end] }
	doc := &canonDoc{buf: buf, rg: rg, top: make([]canonMember, len(members))}
	for i, m := range members {
		doc.top[i] = canonMember{name: m.name, key: at(m.key)}
		if i != rg {
			doc.top[i].val = at(m.val)
			continue
		}
		doc.top[i].sub = make([]canonMember, len(m.sub))
		for j, q := range m.sub {
			doc.top[i].sub[j] = canonMember{name: q.name, key: at(q.key), val: at(q.val)}
		}
	}
	return doc
}

// newCanonDoc encodes r (without its Chain) straight into its canonical
// form (see chain.go), with no encode/decode round trip.
func newCanonDoc(r *Record) (*canonDoc, error) {
	c := *r
	c.Chain = nil
	buf := canonPool.Get().(*canonBuf)
	buf.b, buf.stack, buf.err = buf.b[:0], buf.stack[:0], nil
	top := &canonObject{buf: buf, top: true}
	if err := c.MarshalLogObject(top); err != nil {
		return nil, fmt.Errorf("audit: encoding record: %w", err)
	}
	if buf.err != nil {
		return nil, buf.err
	}
	top.settle()
	// Keys go into the buffer too; slices of it are taken only once it
	// has stopped growing.
	withKey := func(m pendingMember) keyedMember {
		start := len(buf.b)
		buf.b = appendCanonString(buf.b, m.name)
		return keyedMember{name: m.name, key: span{start, len(buf.b)}, val: m.val}
	}
	var members []keyedMember
	rg := -1
	for _, m := range sortMembers(top.members()) {
		k := withKey(m)
		if m.open {
			rg = len(members)
			for _, q := range sortMembers(m.sub) {
				k.sub = append(k.sub, withKey(q))
			}
		}
		members = append(members, k)
	}
	if rg < 0 {
		return nil, errors.New("record has no resetguard object")
	}
	doc := resolveDoc(buf.b, members, rg)
	doc.pooled = buf
	return doc, nil
}

// canonFromMap encodes m's members (resetguard's one level down, leaving
// out resetguard.chain) the reference way, through encoding/json: the
// verifier reads lines back into maps, and the tests hold newCanonDoc to
// it. m must have a resetguard object.
func canonFromMap(m map[string]any) (*canonDoc, error) {
	e := newSpanEncoder()
	top, err := e.keys(m, "")
	if err != nil {
		return nil, err
	}
	rg := -1
	for i := range top {
		p := &top[i]
		v := m[p.name]
		if p.name != "resetguard" {
			if p.val, err = e.encode(v); err != nil {
				return nil, err
			}
			continue
		}
		rgm, ok := v.(map[string]any)
		if !ok {
			return nil, errors.New("resetguard is not an object")
		}
		if p.sub, err = e.keys(rgm, "chain"); err != nil {
			return nil, err
		}
		for j := range p.sub {
			if p.sub[j].val, err = e.encode(rgm[p.sub[j].name]); err != nil {
				return nil, err
			}
		}
		rg = i
	}
	if rg < 0 {
		return nil, errors.New("record has no resetguard object")
	}
	return resolveDoc(e.out.Bytes(), top, rg), nil
}

// spanEncoder appends values to one buffer as encoding/json writes them
// (without HTML escaping) and returns where each went.
type spanEncoder struct {
	out bytes.Buffer
	enc *json.Encoder
}

func newSpanEncoder() *spanEncoder {
	e := &spanEncoder{}
	e.enc = json.NewEncoder(&e.out)
	e.enc.SetEscapeHTML(false)
	return e
}

func (e *spanEncoder) encode(v any) (span, error) {
	start := e.out.Len()
	if err := e.enc.Encode(v); err != nil {
		return span{}, err
	}
	e.out.Truncate(e.out.Len() - 1) // Encode's newline
	return span{start, e.out.Len()}, nil
}

// keys encodes m's keys, except skip, in encoding/json's map key order;
// the values are left to the caller.
func (e *spanEncoder) keys(m map[string]any, skip string) ([]keyedMember, error) {
	names := make([]string, 0, len(m))
	for k := range m {
		if k != skip {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	ps := make([]keyedMember, 0, len(names))
	for _, k := range names {
		ks, err := e.encode(k)
		if err != nil {
			return nil, err
		}
		ps = append(ps, keyedMember{name: k, key: ks})
	}
	return ps, nil
}

// appendTo writes the canonical JSON, with resetguard.chain set to chain
// (an encoded object) unless chain is nil.
func (d *canonDoc) appendTo(dst, chain []byte) []byte {
	dst = append(dst, '{')
	for i, m := range d.top {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m.key...)
		dst = append(dst, ':')
		if i != d.rg {
			dst = append(dst, m.val...)
			continue
		}
		dst = append(dst, '{')
		n := 0
		sep := func() {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
		}
		for _, s := range m.sub {
			if chain != nil && s.name > "chain" {
				sep()
				dst = append(dst, `"chain":`...)
				dst = append(dst, chain...)
				chain = nil
			}
			sep()
			dst = append(dst, s.key...)
			dst = append(dst, ':')
			dst = append(dst, s.val...)
		}
		if chain != nil {
			sep()
			dst = append(dst, `"chain":`...)
			dst = append(dst, chain...)
			chain = nil
		}
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// Canonical returns r's canonical JSON without resetguard.chain: the bytes
// its chain hash covers.
func Canonical(r *Record) ([]byte, error) {
	d, err := newCanonDoc(r)
	if err != nil {
		return nil, err
	}
	return d.appendTo(nil, nil), nil
}

// canonPool recycles the buffers documents are built in; a FileSink
// returns one as soon as the line is sealed.
var canonPool = sync.Pool{New: func() any {
	return &canonBuf{b: make([]byte, 0, 8<<10), stack: make([]pendingMember, 0, 64)}
}}

// free hands d's buffer back for reuse; d must not be used after.
func (d *canonDoc) free() {
	if d.pooled == nil || cap(d.buf) > 64<<10 {
		return // a huge record's buffer is not worth keeping
	}
	d.pooled.b = d.buf[:0]
	canonPool.Put(d.pooled)
	d.pooled, d.buf, d.top = nil, nil, nil
}

// size is the length of d.appendTo(nil, nil).
func (d *canonDoc) size() int {
	n := 1 + len(d.top)
	for i, m := range d.top {
		n += len(m.key) + 1 + len(m.val)
		if i == d.rg {
			n += 1 + len(m.sub)
			for _, q := range m.sub {
				n += len(q.key) + 1 + len(q.val)
			}
		}
	}
	return n
}
