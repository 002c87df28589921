package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// parsedLine is one line of a chained file, checked on its own.
type parsedLine struct {
	Chain
	ok  bool   // canonical and the hash recomputes
	why string // when !ok
	wal walFacts
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
	p := &parsedLine{Chain: c, ok: true, wal: walFactsOf(m)}
	canonical := doc.appendTo(nil, nil)
	if !bytes.Equal(doc.appendTo(nil, appendChainJSON(nil, c)), line) {
		p.ok, p.why = false, "the line is not in canonical form (white space, key order, escaping or a duplicated key changed)"
	} else if chainHash(key, c.Prev, c.Seq, canonical) != c.Hash {
		p.ok, p.why = false, "the hash does not recompute: the record's content or chain was changed (or the chain key is not the one it was written with)"
	}
	return p, ""
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
