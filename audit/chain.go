package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strconv"

	"go.uber.org/zap/zapcore"
)

// The hash chain of the durable audit file.
//
// Every line of a FileSink's file is one record in canonical JSON with a
// resetguard.chain object {seq, prev, hash} added:
//
//   - canonical JSON: the record as MarshalLogObject writes it (through a zap
//     JSON encoder without time, level, message or caller keys, so only the
//     record's fields), decoded with json.Number and re-encoded by
//     encoding/json with sorted object keys and without HTML escaping;
//   - seq counts records from 1 and never restarts, across rotations and
//     restarts;
//   - prev is the hash of the record before, GenesisHash for seq 1;
//   - hash is hex(H(prev || "\n" || decimal(seq) || "\n" || canonical)),
//     where canonical is the record's canonical JSON WITHOUT
//     resetguard.chain and H is SHA-256, or HMAC-SHA256 under the chain key
//     when one is configured (then only a key holder can recompute the
//     chain after an edit). Binding seq makes a renumbered line an edited
//     one.
//
// Verification parses a line, takes resetguard.chain out, re-encodes the
// rest canonically, recomputes the hash and follows seq and prev from line
// to line. A line must also be byte for byte the canonical encoding of what
// it parses to (with its chain), so that a change that survives parsing
// (whitespace, escaping, a duplicated key a SIEM might read differently) is
// an edit too.

// GenesisHash is the prev of the first record of a chain (seq 1).
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Chain is a record's link in the durable file's hash chain, written as
// resetguard.chain.
type Chain struct {
	Seq  int64  // 1 for the first record ever written to the chain
	Prev string // Hash of the record before; GenesisHash for seq 1
	Hash string // hex SHA-256 or HMAC-SHA256 (see the package's chain notes)
}

// chainJSON is c's canonical encoding: {"hash":..,"prev":..,"seq":..}.
// prev and hash are hex (checked by the parser for read values), so they
// need no escaping.
func appendChainJSON(dst []byte, c Chain) []byte {
	dst = append(dst, `{"hash":"`...)
	dst = append(dst, c.Hash...)
	dst = append(dst, `","prev":"`...)
	dst = append(dst, c.Prev...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendInt(dst, c.Seq, 10)
	return append(dst, '}')
}

// chainHash computes a record's hash from its predecessor's, its seq and
// its canonical JSON without the chain. An empty key means plain SHA-256.
func chainHash(key []byte, prev string, seq int64, canonical []byte) string {
	var h hash.Hash
	if len(key) > 0 {
		h = hmac.New(sha256.New, key)
	} else {
		h = sha256.New()
	}
	var num [24]byte
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(strconv.AppendInt(num[:0], seq, 10))
	h.Write([]byte{'\n'})
	h.Write(canonical)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// isHash reports whether s is 64 lower-case hex digits, the form of hash
// and prev.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// recordEncoder writes a record's fields and nothing else: no time, level,
// message, logger name or caller keys. EncodeEntry does not change the
// encoder, so one serves every goroutine.
var recordEncoder = zapcore.NewJSONEncoder(zapcore.EncoderConfig{
	LineEnding:     "\n",
	EncodeDuration: zapcore.NanosDurationEncoder,
	EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
})

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

// decodeObject decodes one JSON object, numbers as json.Number, refusing
// anything after it but white space.
func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// canonFromMap encodes m's members (resetguard's one level down, leaving
// out resetguard.chain). m must have a resetguard object.
func canonFromMap(m map[string]any) (*canonDoc, error) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	type span struct{ start, end int }
	encode := func(v any) (span, error) {
		start := out.Len()
		if err := enc.Encode(v); err != nil {
			return span{}, err
		}
		out.Truncate(out.Len() - 1) // Encode's newline
		return span{start, out.Len()}, nil
	}
	type pending struct {
		name     string
		key, val span
		sub      []pending
	}
	members := func(m map[string]any, skip string) ([]pending, error) {
		names := make([]string, 0, len(m))
		for k := range m {
			if k != skip {
				names = append(names, k)
			}
		}
		slices.Sort(names) // encoding/json's map key order
		ps := make([]pending, 0, len(names))
		for _, k := range names {
			ks, err := encode(k)
			if err != nil {
				return nil, err
			}
			ps = append(ps, pending{name: k, key: ks})
		}
		return ps, nil
	}

	top, err := members(m, "")
	if err != nil {
		return nil, err
	}
	doc := &canonDoc{rg: -1}
	for i := range top {
		p := &top[i]
		v := m[p.name]
		if p.name == "resetguard" {
			rgm, ok := v.(map[string]any)
			if !ok {
				return nil, errors.New("resetguard is not an object")
			}
			if p.sub, err = members(rgm, "chain"); err != nil {
				return nil, err
			}
			for j := range p.sub {
				if p.sub[j].val, err = encode(rgm[p.sub[j].name]); err != nil {
					return nil, err
				}
			}
			doc.rg = i
			continue
		}
		if p.val, err = encode(v); err != nil {
			return nil, err
		}
	}
	if doc.rg < 0 {
		return nil, errors.New("record has no resetguard object")
	}
	doc.buf = out.Bytes()
	at := func(s span) []byte { return doc.buf[s.start:s.end:s.end] }
	doc.top = make([]canonMember, len(top))
	for i, p := range top {
		doc.top[i] = canonMember{name: p.name, key: at(p.key), val: at(p.val)}
		if i == doc.rg {
			doc.top[i].val = nil
			doc.top[i].sub = make([]canonMember, len(p.sub))
			for j, q := range p.sub {
				doc.top[i].sub[j] = canonMember{name: q.name, key: at(q.key), val: at(q.val)}
			}
		}
	}
	return doc, nil
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

// sealLine links d to the chain after (prevSeq, prevHash) and returns the
// line to write (with its newline) and the new link.
func sealLine(key []byte, d *canonDoc, prevSeq int64, prevHash string) ([]byte, Chain) {
	n := d.size()
	canonical := d.appendTo(make([]byte, 0, 2*n+160), nil) // then the line, with its chain
	c := Chain{Seq: prevSeq + 1, Prev: prevHash}
	c.Hash = chainHash(key, c.Prev, c.Seq, canonical)
	var cj [160]byte
	line := d.appendTo(canonical[len(canonical):], appendChainJSON(cj[:0], c))
	return append(line, '\n'), c
}

// parsedLine is one line of a chained file, checked on its own.
type parsedLine struct {
	Chain
	ok  bool   // canonical and the hash recomputes
	why string // when !ok
}

// parseLine reads a line (without its newline). A nil result comes with
// the reason the line is malformed (not JSON, no valid chain object).
func parseLine(key, line []byte) (*parsedLine, string) {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil, "empty line"
	}
	m, err := decodeObject(line)
	if err != nil {
		return nil, "not a JSON object: " + err.Error()
	}
	c, err := chainOf(m)
	if err != nil {
		return nil, err.Error()
	}
	doc, err := canonFromMap(m)
	if err != nil {
		return nil, err.Error()
	}
	p := &parsedLine{Chain: c, ok: true}
	canonical := doc.appendTo(nil, nil)
	if !bytes.Equal(doc.appendTo(nil, appendChainJSON(nil, c)), line) {
		p.ok, p.why = false, "the line is not in canonical form (white space, key order, escaping or a duplicated key changed)"
	} else if chainHash(key, c.Prev, c.Seq, canonical) != c.Hash {
		p.ok, p.why = false, "the hash does not recompute: the record's content or chain was changed (or the chain key is not the one it was written with)"
	}
	return p, ""
}

// chainOf extracts and checks resetguard.chain.
func chainOf(m map[string]any) (Chain, error) {
	rg, ok := m["resetguard"].(map[string]any)
	if !ok {
		return Chain{}, errors.New("no resetguard object")
	}
	cm, ok := rg["chain"].(map[string]any)
	if !ok {
		return Chain{}, errors.New("no resetguard.chain object")
	}
	var c Chain
	n, ok := cm["seq"].(json.Number)
	if !ok {
		return Chain{}, errors.New("resetguard.chain.seq is not a number")
	}
	seq, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil || seq < 1 {
		return Chain{}, fmt.Errorf("resetguard.chain.seq %s is not a positive integer", n)
	}
	c.Seq = seq
	if c.Prev, ok = cm["prev"].(string); !ok || !isHash(c.Prev) {
		return Chain{}, errors.New("resetguard.chain.prev is not 64 lower-case hex digits")
	}
	if c.Hash, ok = cm["hash"].(string); !ok || !isHash(c.Hash) {
		return Chain{}, errors.New("resetguard.chain.hash is not 64 lower-case hex digits")
	}
	if len(cm) != 3 {
		return Chain{}, errors.New("resetguard.chain has members other than seq, prev and hash")
	}
	return c, nil
}

// Problem kinds VerifyFiles reports.
const (
	// ProblemEdited: a line's hash does not recompute, it is not in
	// canonical form, or its prev does not match its predecessor's hash
	// while its seq continues (this record or the one before was altered).
	ProblemEdited = "edited"
	// ProblemDeleted: seq jumps ahead and prev does not match: the records
	// in between are missing (Detail names the range). Also: the chain
	// starts above seq 1 (without Partial), or ends before the expected
	// head (VerifyOptions.HeadSeq).
	ProblemDeleted = "deleted"
	// ProblemInserted: a line that does not belong: the next line
	// continues the chain as if it were not there, it repeats the seq of
	// the line before, or it is a copy of an earlier record at the end.
	ProblemInserted = "inserted"
	// ProblemReordered: seq goes backwards; for two swapped neighbours the
	// first of them is named.
	ProblemReordered = "reordered"
	// ProblemMalformed: not a JSON object, no valid resetguard.chain, or
	// an incomplete final line (the file was cut mid-record).
	ProblemMalformed = "malformed"
)

// Problem is where and how a chain breaks.
type Problem struct {
	File string // the path as given
	Line int    // 1-based line number in File
	// Seq is the line's own seq when it could be read; for a malformed
	// line, or the end of a chain that stops short of its expected head,
	// the seq expected there.
	Seq    int64
	Kind   string // one of the Problem* constants
	Detail string
}

func (p *Problem) String() string {
	return fmt.Sprintf("%s at %s:%d (seq %d): %s", p.Kind, p.File, p.Line, p.Seq, p.Detail)
}

// VerifyReport is the outcome of VerifyFiles.
type VerifyReport struct {
	// Records counts the records verified before the first problem (all
	// of them when there is none).
	Records int
	// Files counts the files read (up to the first problem).
	Files int
	// LastSeq and LastHash are the last verified record's link (0 and
	// GenesisHash when there is none): keep them to check later that the
	// chain still reaches this far (VerifyOptions.HeadSeq/HeadHash).
	LastSeq  int64
	LastHash string
	// FirstProblem is nil when the chain is intact.
	FirstProblem *Problem
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// Key is the chain key (HMAC-SHA256); empty for plain SHA-256.
	Key []byte
	// Partial accepts a first record above seq 1 (older files archived or
	// deleted): its prev is then taken on trust.
	Partial bool
	// HeadSeq, when positive, is a seq the chain is known to have reached
	// (e.g. LastSeq of an earlier verification, or FileSink.Head logged
	// elsewhere): a chain that ends before it was cut short, which the
	// chain alone cannot show when whole lines are cut from the end of the
	// last file. HeadHash, when set, is that record's expected hash.
	HeadSeq  int64
	HeadHash string
}

// VerifyFiles checks the hash chain across paths, read in the order given
// (oldest rotated file first, the live file last): every line parses, seq
// goes up by one from 1, prev is the previous hash and hash recomputes
// under key (empty: SHA-256). It stops at the first problem. The error is
// for I/O only; a broken chain is reported in VerifyReport.FirstProblem.
func VerifyFiles(key []byte, paths ...string) (VerifyReport, error) {
	return Verify(VerifyOptions{Key: key}, paths...)
}

// Verify is VerifyFiles with options.
func Verify(opts VerifyOptions, paths ...string) (VerifyReport, error) {
	src := &lineSource{paths: paths, key: opts.Key}
	defer src.close()
	rep := VerifyReport{LastHash: GenesisHash}
	var (
		last       *vline // the last accepted line
		beforeLast = Chain{Hash: GenesisHash}
		expSeq     = int64(1)
		expPrev    = GenesisHash
	)
	for {
		cur, err := src.next()
		if err != nil {
			rep.Files = src.files
			return rep, err
		}
		if cur == nil {
			break
		}
		if cur.p == nil {
			rep.FirstProblem = &Problem{File: cur.file, Line: cur.line, Seq: expSeq, Kind: ProblemMalformed, Detail: cur.bad}
			break
		}
		c := cur.p
		partialStart := last == nil && opts.Partial
		if c.ok && (partialStart || (c.Seq == expSeq && c.Prev == expPrev)) {
			if opts.HeadSeq == c.Seq && opts.HeadHash != "" && c.Hash != opts.HeadHash {
				rep.FirstProblem = &Problem{File: cur.file, Line: cur.line, Seq: c.Seq, Kind: ProblemEdited,
					Detail: fmt.Sprintf("hash %s is not the expected head hash %s: the chain was rewritten up to here", c.Hash, opts.HeadHash)}
				break
			}
			if last != nil {
				beforeLast = last.p.Chain
			}
			last = cur
			rep.Records++
			rep.LastSeq, rep.LastHash = c.Seq, c.Hash
			expSeq, expPrev = c.Seq+1, c.Hash
			continue
		}
		if partialStart {
			rep.FirstProblem = &Problem{File: cur.file, Line: cur.line, Seq: c.Seq, Kind: ProblemEdited, Detail: c.why}
			break
		}
		next, err := src.peek()
		if err != nil {
			rep.Files = src.files
			return rep, err
		}
		p, blamesLast := diagnose(cur, next, last, expSeq, expPrev)
		if blamesLast {
			rep.Records--
			rep.LastSeq, rep.LastHash = beforeLast.Seq, beforeLast.Hash
		}
		rep.FirstProblem = p
		break
	}
	if rep.FirstProblem == nil && opts.HeadSeq > rep.LastSeq {
		p := &Problem{Seq: rep.LastSeq + 1, Kind: ProblemDeleted}
		missing := seqRange(rep.LastSeq+1, opts.HeadSeq)
		if last != nil {
			p.File, p.Line = last.file, last.line+1
			p.Detail = fmt.Sprintf("the chain ends at seq %d but is known to have reached seq %d: %s missing (cut from the end)", rep.LastSeq, opts.HeadSeq, missing)
		} else {
			if len(paths) > 0 {
				p.File, p.Line = paths[len(paths)-1], 1
			}
			p.Detail = fmt.Sprintf("no records, but the chain is known to have reached seq %d: %s missing", opts.HeadSeq, missing)
		}
		rep.FirstProblem = p
	}
	rep.Files = src.files
	return rep, nil
}

func seqRange(from, to int64) string {
	if from == to {
		return fmt.Sprintf("record seq %d is", from)
	}
	return fmt.Sprintf("records seq %d..%d are", from, to)
}

// diagnose names the problem at cur, a line that does not continue the
// chain after last (nil at the start) or does not check out on its own.
// next (nil at the end) tells an insertion or a swap from an edit or a
// deletion. blamesLast reports that the problem is the line before cur.
func diagnose(cur, next, last *vline, expSeq int64, expPrev string) (p *Problem, blamesLast bool) {
	c := cur.p
	at := func(kind, detail string, args ...any) *Problem {
		return &Problem{File: cur.file, Line: cur.line, Seq: c.Seq, Kind: kind, Detail: fmt.Sprintf(detail, args...)}
	}
	nok := next != nil && next.p != nil && next.p.ok
	nextLinksLast := nok && next.p.Seq == expSeq && next.p.Prev == expPrev
	lastAt := "the start of the chain"
	if last != nil {
		lastAt = fmt.Sprintf("%s:%d", last.file, last.line)
	}

	switch {
	case c.ok && nextLinksLast && c.Seq == next.p.Seq+1 && c.Prev == next.p.Hash:
		return at(ProblemReordered, "seq %d comes before seq %d (%s:%d): the two records are swapped", c.Seq, next.p.Seq, next.file, next.line), false

	case c.ok && last != nil && c.Seq == last.p.Seq && c.Prev == last.p.Prev && c.Hash != last.p.Hash &&
		nok && next.p.Seq == c.Seq+1 && next.p.Prev == c.Hash:
		// Two records claim one place; the chain goes on from cur, so the
		// one before it (accepted so far) is the stranger.
		return &Problem{File: last.file, Line: last.line, Seq: last.p.Seq, Kind: ProblemInserted,
			Detail: fmt.Sprintf("this record and the one at %s:%d both claim seq %d after the same predecessor; the chain continues from the latter, so this one was inserted", cur.file, cur.line, c.Seq)}, true

	case nextLinksLast && !c.ok:
		return at(ProblemInserted, "the line does not check out (%s), and the next line (%s:%d) continues the chain from %s without it: it was added", c.why, next.file, next.line, lastAt), false

	case nextLinksLast:
		return at(ProblemInserted, "seq %d does not continue the chain (expected seq %d), and the next line (%s:%d) does: it was added", c.Seq, expSeq, next.file, next.line), false

	case !c.ok:
		return at(ProblemEdited, "%s", c.why), false

	case c.Seq > expSeq && c.Prev == expPrev:
		return at(ProblemEdited, "seq jumps from %d to %d, yet prev links to the record at %s: the seq was changed", expSeq-1, c.Seq, lastAt), false

	case c.Seq > expSeq && last == nil:
		return at(ProblemDeleted, "the chain starts at seq %d: %s missing (give the older files first, or verify with --partial if they were archived)", c.Seq, seqRange(1, c.Seq-1)), false

	case c.Seq > expSeq:
		return at(ProblemDeleted, "%s missing between %s (seq %d) and this line", seqRange(expSeq, c.Seq-1), lastAt, last.p.Seq), false

	case c.Seq == expSeq && last == nil:
		return at(ProblemEdited, "seq 1 but prev is not the genesis hash (64 zeros)"), false

	case c.Seq == expSeq:
		return at(ProblemEdited, "prev does not match the hash of the previous record (seq %d at %s): this record or the previous one was altered and re-hashed", last.p.Seq, lastAt), false

	case c.Seq == last.p.Seq:
		return at(ProblemInserted, "seq %d again (also at %s)", c.Seq, lastAt), false

	case next == nil:
		return at(ProblemInserted, "seq %d after seq %d at the end of the chain: an earlier record copied", c.Seq, last.p.Seq), false

	default:
		return at(ProblemReordered, "seq goes backwards from %d (%s) to %d", last.p.Seq, lastAt, c.Seq), false
	}
}

// maxLine bounds one line in verification: records are a few KiB.
const maxLine = 16 << 20

// vline is one line read for verification.
type vline struct {
	file string
	line int
	p    *parsedLine // nil: malformed, see bad
	bad  string
}

// lineSource reads the lines of several files in turn, with one line of
// look-ahead across file boundaries.
type lineSource struct {
	paths  []string
	key    []byte
	i      int
	f      *os.File
	br     *bufio.Reader
	file   string
	line   int
	files  int
	peeked *vline
	hasPk  bool
}

func (s *lineSource) next() (*vline, error) {
	if s.hasPk {
		s.hasPk = false
		return s.peeked, nil
	}
	return s.read()
}

func (s *lineSource) peek() (*vline, error) {
	if !s.hasPk {
		v, err := s.read()
		if err != nil {
			return nil, err
		}
		s.peeked, s.hasPk = v, true
	}
	return s.peeked, nil
}

func (s *lineSource) read() (*vline, error) {
	for {
		if s.br == nil {
			if s.i >= len(s.paths) {
				return nil, nil
			}
			f, err := os.Open(s.paths[s.i])
			if err != nil {
				return nil, err
			}
			s.f, s.br, s.file, s.line = f, bufio.NewReaderSize(f, 64<<10), s.paths[s.i], 0
			s.i++
			s.files++
		}
		b, complete, err := readLine(s.br)
		if err == io.EOF {
			s.close()
			continue
		}
		s.line++
		v := &vline{file: s.file, line: s.line}
		switch {
		case errors.Is(err, errLineTooLong):
			v.bad = fmt.Sprintf("line longer than %d bytes", maxLine)
			return v, nil
		case err != nil:
			return nil, fmt.Errorf("reading %s: %w", s.file, err)
		}
		v.p, v.bad = parseLine(s.key, b)
		if v.p == nil && !complete {
			v.bad = fmt.Sprintf("the file ends in an incomplete line (%d bytes, no newline): cut mid-record (%s)", len(b), v.bad)
		}
		return v, nil
	}
}

func (s *lineSource) close() {
	if s.f != nil {
		s.f.Close()
		s.f, s.br = nil, nil
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline; complete is false
// for a last line without one. io.EOF only when nothing is left.
func readLine(br *bufio.Reader) (b []byte, complete bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLine {
			return nil, false, errLineTooLong
		}
		switch err {
		case nil:
			return b[:len(b)-1], true, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(b) == 0 {
				return nil, false, io.EOF
			}
			return b, false, nil
		default:
			return nil, false, err
		}
	}
}
