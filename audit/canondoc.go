package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// canonDoc is a record's canonical JSON without resetguard.chain (the
// bytes its chain hash covers), with the place where resetguard.chain
// goes in it, so that the line with its chain is a copy with one
// insertion rather than a second encoding.
type canonDoc struct {
	b []byte // canonical JSON without resetguard.chain
	// at is where the chain member goes in b: after resetguard's members
	// that sort before "chain". lead: a member precedes it, so it needs a
	// comma before; trail: none precedes it and one follows, so it needs
	// one after.
	at          int
	lead, trail bool
	// pooled is where b came from, when it came from canonPool.
	pooled *canonBuf
}

// newCanonDoc encodes r (without its Chain) straight into its canonical
// form (see chain.go), with no encode/decode round trip.
func newCanonDoc(r *Record) (*canonDoc, error) {
	buf := canonPool.Get().(*canonBuf)
	buf.reset()
	top := buf.object()
	top.top = true
	if err := r.MarshalLogObject(top); err != nil {
		canonPool.Put(buf)
		return nil, fmt.Errorf("audit: encoding record: %w", err)
	}
	v := top.close()
	if buf.err != nil {
		err := buf.err
		canonPool.Put(buf)
		return nil, err
	}
	if !buf.rgSeen {
		canonPool.Put(buf)
		return nil, errors.New("record has no resetguard object")
	}
	buf.doc = canonDoc{b: buf.b[v.start:v.end:v.end], at: buf.rgAt - v.start,
		lead: buf.rgLead, trail: buf.rgTrail, pooled: buf}
	return &buf.doc, nil
}

func (b *canonBuf) reset() {
	b.b, b.stack, b.elems, b.err = b.b[:0], b.stack[:0], b.elems[:0], nil
	b.depth, b.adepth, b.rgSeen = 0, 0, false
}

// keyedMember is a member whose key and value are still positions in a
// buffer that may move as it grows.
type keyedMember struct {
	name     string
	key, val span
	sub      []keyedMember // resetguard's members, without chain
}

// flatDoc writes the members of a document, whose keys and values are
// in src, as its canonical JSON; rg is resetguard's index in top.
func flatDoc(src []byte, top []keyedMember, rg int) *canonDoc {
	at := func(s span) []byte { return src[s.start:s.end] }
	d := &canonDoc{}
	out := make([]byte, 0, len(src)+len(top)+16)
	out = append(out, '{')
	for i, m := range top {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, at(m.key)...)
		out = append(out, ':')
		if i != rg {
			out = append(out, at(m.val)...)
			continue
		}
		out = append(out, '{')
		d.at = -1
		for j, q := range m.sub {
			if d.at < 0 && q.name > "chain" {
				d.at, d.lead, d.trail = len(out), j > 0, j == 0
			}
			if j > 0 {
				out = append(out, ',')
			}
			out = append(out, at(q.key)...)
			out = append(out, ':')
			out = append(out, at(q.val)...)
		}
		if d.at < 0 {
			d.at, d.lead, d.trail = len(out), len(m.sub) > 0, false
		}
		out = append(out, '}')
	}
	d.b = append(out, '}')
	return d
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
	return flatDoc(e.out.Bytes(), top, rg), nil
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
	if chain == nil {
		return append(dst, d.b...)
	}
	dst = append(dst, d.b[:d.at]...)
	if d.lead {
		dst = append(dst, ',')
	}
	dst = append(dst, `"chain":`...)
	dst = append(dst, chain...)
	if d.trail {
		dst = append(dst, ',')
	}
	return append(dst, d.b[d.at:]...)
}

// Canonical returns r's canonical JSON without resetguard.chain: the bytes
// its chain hash covers.
func Canonical(r *Record) ([]byte, error) {
	d, err := newCanonDoc(r)
	if err != nil {
		return nil, err
	}
	defer d.free()
	return d.appendTo(nil, nil), nil
}

// canonPool recycles the buffers documents are built in, with their
// scratch space; a FileSink returns one as soon as the line is written.
var canonPool = sync.Pool{New: func() any {
	return &canonBuf{b: make([]byte, 0, 8<<10), stack: make([]pendingMember, 0, 64),
		elems: make([]span, 0, 16), order: make([]int32, 0, 32)}
}}

// maxPooled bounds the buffers kept for reuse: a record is a few KiB, and
// keeping a rare huge one would pin its memory.
const maxPooled = 64 << 10

// free hands d's buffer back for reuse; d, and any line sealed from it,
// must not be used after.
func (d *canonDoc) free() {
	p := d.pooled
	if p == nil {
		return
	}
	d.pooled, d.b = nil, nil
	if cap(p.b) > maxPooled || cap(p.line) > maxPooled {
		return
	}
	canonPool.Put(p)
}
