package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
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
//     restarts; the only seq it skips is one a repair record names as
//     retired (a torn line's, see torn.go), directly before it;
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

// appendChainJSON appends c's canonical encoding: {"hash":..,"prev":..,"seq":..}.
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
	var h chainHasher
	return h.sum(key, prev, seq, canonical)
}

// chainHasher computes chain hashes, keeping its hash state (and an HMAC's
// key schedule) from one record to the next: a FileSink has one, used
// under its writer lock, so that sealing a line allocates only the hash's
// hex string.
type chainHasher struct {
	sha    hash.Hash
	mac    hash.Hash
	macKey []byte
	prefix []byte
}

func (c *chainHasher) sum(key []byte, prev string, seq int64, canonical []byte) string {
	var h hash.Hash
	switch {
	case len(key) == 0:
		if c.sha == nil {
			c.sha = sha256.New()
		}
		h = c.sha
	case c.mac != nil && bytes.Equal(key, c.macKey):
		h = c.mac
	default:
		c.mac, c.macKey = hmac.New(sha256.New, key), bytes.Clone(key)
		h = c.mac
	}
	h.Reset()
	p := append(c.prefix[:0], prev...)
	p = append(p, '\n')
	p = strconv.AppendInt(p, seq, 10)
	p = append(p, '\n')
	c.prefix = p
	h.Write(p)
	h.Write(canonical)
	var sum [sha256.Size]byte
	var hx [2 * sha256.Size]byte
	hex.Encode(hx[:], h.Sum(sum[:0]))
	return string(hx[:])
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

// sealLine links d to the chain after (prevSeq, prevHash) and returns the
// line to write (with its newline) and the new link.
func sealLine(key []byte, d *canonDoc, prevSeq int64, prevHash string) ([]byte, Chain) {
	var h chainHasher
	return h.seal(key, d, prevSeq, prevHash)
}

// seal is sealLine with h's hash state. The line is built in d's pooled
// buffer when it has one: it is good until d.free.
func (h *chainHasher) seal(key []byte, d *canonDoc, prevSeq int64, prevHash string) ([]byte, Chain) {
	c := Chain{Seq: prevSeq + 1, Prev: prevHash}
	c.Hash = h.sum(key, c.Prev, c.Seq, d.b)
	var cj [160]byte
	var dst []byte
	if d.pooled != nil {
		dst = d.pooled.line[:0]
	}
	line := append(d.appendTo(dst, appendChainJSON(cj[:0], c)), '\n')
	if d.pooled != nil {
		d.pooled.line = line
	}
	return line, c
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
