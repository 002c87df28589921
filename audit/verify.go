package audit

import "fmt"

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

// String puts the problem on one line, for logs and test failures.
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
	// OpenIntents counts the intent records among the verified ones that
	// no later outcome names by intent_seq; OpenIntentSeqs lists their
	// seqs, ascending. At the end of a live file they are requests in
	// flight, or a stop the sink has not reopened after (it closes them
	// as unknown, gateway_restarted, when it opens). Not a chain problem.
	OpenIntents    int
	OpenIntentSeqs []int64
	// Repairs counts repair records: torn lines the sink cut (and saved
	// beside the file) when it opened.
	Repairs int
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
// goes up by one from 1 (or skips the one seq a repair record names as
// retired, directly before it), prev is the previous hash and hash recomputes
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
		wal        walTracker
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
		if c.ok && (partialStart || (c.Seq == expSeq && c.Prev == expPrev) || c.retires(expSeq, expPrev)) {
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
			wal.see(c)
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
		rep.FirstProblem = cutShort(rep.LastSeq, opts.HeadSeq, last, paths)
	}
	rep.Files = src.files
	wal.report(&rep)
	return rep, nil
}

// cutShort is the problem of a chain that ends at lastSeq although it is
// known to have reached headSeq: whole lines cut from the end of the last
// file, which the chain alone cannot show. last is the last accepted line
// (nil when there is none).
func cutShort(lastSeq, headSeq int64, last *vline, paths []string) *Problem {
	p := &Problem{Seq: lastSeq + 1, Kind: ProblemDeleted}
	missing := seqRange(lastSeq+1, headSeq)
	if last != nil {
		p.File, p.Line = last.file, last.line+1
		p.Detail = fmt.Sprintf("the chain ends at seq %d but is known to have reached seq %d: %s missing (cut from the end)", lastSeq, headSeq, missing)
		return p
	}
	if len(paths) > 0 {
		p.File, p.Line = paths[len(paths)-1], 1
	}
	p.Detail = fmt.Sprintf("no records, but the chain is known to have reached seq %d: %s missing", headSeq, missing)
	return p
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
