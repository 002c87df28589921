package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Crash recovery of the write-ahead protocol: an intent is written (and
// under fsync always, on disk) before its request is forwarded, and its
// outcome after the backend answered. A gateway that stops in between
// leaves an intent no outcome names; when the sink opens next, it finds
// those and appends for each an outcome "unknown", reason
// gateway_restarted, so that every intent in the trail is closed and the
// trail says honestly that the reset may have happened.
//
// Scanned: the newest rotated file (an intent written just before a
// rotation has its outcome in the live file, or none) and the live file.
// The scan does not parse records: file lines are canonical JSON, so an
// intent is a line holding `"kind":"intent"` (event.kind is always
// "event"; a string value cannot hold an unescaped quote) and an outcome
// that closes one holds `"intent_seq":N`. An outcome always comes after
// its intent, so the set of intents still open stays as small as the
// number of requests in flight. Only the intents left open at the end are
// read again and decoded, before anything is appended.

var (
	intentKindMark = []byte(`"kind":"intent"`)
	intentSeqMark  = []byte(`"intent_seq":`)
	chainMark      = []byte(`"chain":{"hash":"`)
)

// closeOpenEnds runs once in OpenFileSink: it finds the intents without an
// outcome (before anything is appended, so that a rotation cannot move the
// files under the scan), writes the repair records of a torn line cut at
// open, then the outcomes of those intents.
func (s *FileSink) closeOpenEnds() error {
	open, err := s.scanOpenIntents()
	if err != nil {
		return err
	}
	if err := s.writeRepairs(); err != nil {
		return err
	}
	var seqs []string
	for _, seq := range slices.Sorted(maps.Keys(open)) {
		intent, err := decodeIntent(open[seq], seq)
		if err != nil {
			return fmt.Errorf("audit: file sink: cannot close the intent at seq %d that a stop left open in %s: %w; move the file aside", seq, s.cfg.Path, err)
		}
		out := gatewayRestarted(intent, s.now())
		if err := s.Write(out); err != nil {
			return fmt.Errorf("audit: file sink: writing the outcome of the intent at seq %d that a stop left open: %w", seq, err)
		}
		s.opened = append(s.opened, out)
		s.stats.recovered.Add(1)
		seqs = append(seqs, strconv.FormatInt(seq, 10))
	}
	if len(seqs) > 0 {
		s.mu.Lock()
		s.warn(fmt.Sprintf("%s: %d intent(s) had no outcome (the gateway stopped while their requests were in flight): recorded outcome unknown, reason gateway_restarted, for seq %s",
			s.cfg.Path, len(seqs), strings.Join(seqs, ", ")))
		s.mu.Unlock()
	}
	return nil
}

// lineAt is where a line is: file, offset and length.
type lineAt struct {
	file     string
	off, len int64
}

// scanOpenIntents returns the intent lines no outcome names, by seq, from
// the newest rotated file and the live file.
func (s *FileSink) scanOpenIntents() (map[int64][]byte, error) {
	files, err := s.rotatedFiles()
	if err != nil {
		return nil, err
	}
	if len(files) > 1 {
		files = files[len(files)-1:]
	}
	open := map[int64]lineAt{}
	for _, path := range append(files, s.cfg.Path) {
		err := eachLine(path, func(line []byte, off int64) {
			if i := bytes.Index(line, intentSeqMark); i >= 0 {
				if n, ok := leadingInt(line[i+len(intentSeqMark):]); ok {
					delete(open, n)
				}
				return // only outcomes carry intent_seq
			}
			if bytes.Contains(line, intentKindMark) {
				if seq, ok := lineSeq(line); ok {
					open[seq] = lineAt{path, off, int64(len(line))}
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("audit: file sink: looking for intents without an outcome in %s: %w", path, err)
		}
	}
	lines := make(map[int64][]byte, len(open))
	for seq, at := range open {
		if lines[seq], err = readLineAt(at); err != nil {
			return nil, fmt.Errorf("audit: file sink: reading the intent at seq %d in %s: %w", seq, at.file, err)
		}
	}
	return lines, nil
}

func readLineAt(at lineAt) ([]byte, error) {
	f, err := os.Open(at.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, at.len)
	_, err = f.ReadAt(b, at.off)
	return b, err
}

// eachLine calls fn with every complete line of path, without its newline,
// and its offset. A last line without one is not a record (a torn end) and
// is skipped, as are lines longer than maxLine. fn must not keep line.
func eachLine(path string, fn func(line []byte, off int64)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	var long []byte // a line longer than the buffer, gathered
	gathering, tooLong := false, false
	var off, n int64 // the line's offset, and its length so far
	for {
		frag, err := br.ReadSlice('\n')
		n += int64(len(frag))
		switch {
		case err == nil:
			line := frag[:len(frag)-1]
			if gathering {
				long = append(long, line...)
				line = long
			}
			if !tooLong && n-1 <= maxLine {
				fn(line, off)
			}
			off, n = off+n, 0
			long, gathering, tooLong = long[:0], false, false
		case errors.Is(err, bufio.ErrBufferFull):
			gathering = true
			if tooLong = tooLong || n > maxLine; !tooLong {
				long = append(long, frag...)
			}
		case err == io.EOF:
			return nil
		default:
			return err
		}
	}
}

// lineSeq reads resetguard.chain.seq from a canonical line, whose chain
// object is {"hash":"<64 hex>","prev":"<64 hex>","seq":N}.
func lineSeq(line []byte) (int64, bool) {
	i := bytes.Index(line, chainMark)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(chainMark):]
	const prevAt, seqAt = 64, 64 + len(`","prev":"`) + 64
	if len(rest) < seqAt+len(`","seq":`) ||
		string(rest[prevAt:prevAt+len(`","prev":"`)]) != `","prev":"` ||
		string(rest[seqAt:seqAt+len(`","seq":`)]) != `","seq":` {
		return 0, false
	}
	return leadingInt(rest[seqAt+len(`","seq":`):])
}

// leadingInt parses the positive decimal integer b starts with.
func leadingInt(b []byte) (int64, bool) {
	n := 0
	for n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(string(b[:n]), 10, 64)
	return v, err == nil && v > 0
}

// intentLine is the part of an intent line its outcome copies.
type intentLine struct {
	Timestamp time.Time `json:"@timestamp"`
	Event     struct {
		ID       string `json:"id"`
		Action   string `json:"action"`
		Duration int64  `json:"duration"`
	} `json:"event"`
	HTTP struct {
		Request struct {
			ID     string `json:"id"`
			Method string `json:"method"`
		} `json:"request"`
	} `json:"http"`
	URL struct {
		Path string `json:"path"`
	} `json:"url"`
	Source struct {
		IP string `json:"ip"`
	} `json:"source"`
	User struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain string `json:"domain"`
	} `json:"user"`
	RG struct {
		Kind            string `json:"kind"`
		Route           string `json:"route"`
		PrincipalSource string `json:"principal_source"`
		SessionID       int32  `json:"session_id"`
		Credential      struct {
			Scheme      string `json:"scheme"`
			Fingerprint string `json:"fingerprint"`
		} `json:"credential"`
		Decision *struct {
			Allow    bool     `json:"allow"`
			DryRun   bool     `json:"dry_run"`
			Reasons  []string `json:"reasons"`
			Query    string   `json:"query"`
			Revision string   `json:"policy_revision"`
			EvalNS   int64    `json:"eval_ns"`
		} `json:"decision"`
		Chain struct {
			Seq  int64  `json:"seq"`
			Prev string `json:"prev"`
			Hash string `json:"hash"`
		} `json:"chain"`
	} `json:"resetguard"`
}

// decodeIntent reads an intent line back into a Record with its Chain.
func decodeIntent(line []byte, seq int64) (*Record, error) {
	var in intentLine
	if err := json.Unmarshal(line, &in); err != nil {
		return nil, err
	}
	if in.RG.Kind != KindIntent || in.RG.Chain.Seq != seq {
		return nil, fmt.Errorf("the line is not the intent record seq %d", seq)
	}
	r := &Record{
		Timestamp: in.Timestamp, EventID: in.Event.ID, Action: in.Event.Action,
		Duration: time.Duration(in.Event.Duration), Kind: KindIntent,
		RequestID: in.HTTP.Request.ID, Method: in.HTTP.Request.Method, Path: in.URL.Path, SourceIP: in.Source.IP,
		UserID: in.User.ID, UserName: in.User.Name, UserDomain: in.User.Domain,
		PrincipalSource: in.RG.PrincipalSource, Route: in.RG.Route, SessionID: in.RG.SessionID,
		CredScheme: in.RG.Credential.Scheme, Fingerprint: in.RG.Credential.Fingerprint,
		Chain: &Chain{Seq: in.RG.Chain.Seq, Prev: in.RG.Chain.Prev, Hash: in.RG.Chain.Hash},
	}
	if d := in.RG.Decision; d != nil {
		r.Decision = &Decision{Allow: d.Allow, DryRun: d.DryRun, Reasons: d.Reasons, Query: d.Query,
			Revision: d.Revision, Eval: time.Duration(d.EvalNS)}
	}
	return r, nil
}
