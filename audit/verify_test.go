package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// verifyN is the length of the chain verifyCases tamper with.
const verifyN = 20

// fileLines are the lines of a chained file, without their newlines.
type fileLines = [][]byte

// delLines, insLine, swapLines and editLine tamper with a copy of ls, on
// 1-based line numbers.
func delLines(ls fileLines, from, to int) fileLines {
	return slices.Delete(slices.Clone(ls), from-1, to)
}

func insLine(ls fileLines, after int, l []byte) fileLines {
	return slices.Insert(slices.Clone(ls), after, l)
}

func swapLines(ls fileLines, a, b int) fileLines {
	ls = slices.Clone(ls)
	ls[a-1], ls[b-1] = ls[b-1], ls[a-1]
	return ls
}

func editLine(ls fileLines, i int, f func([]byte) []byte) fileLines {
	ls = slices.Clone(ls)
	ls[i-1] = f(bytes.Clone(ls[i-1]))
	return ls
}

var otherKey = []byte("another key")

// verifyCase is one way of tampering with an intact chain and the first
// problem the verifier must name for it.
type verifyCase struct {
	name  string
	split []int // lines per file after tampering; nil: one file
	// tamper gets the intact lines and the chain key.
	tamper func(t *testing.T, ls fileLines, key []byte) fileLines
	raw    func(b []byte) []byte // then applied to the last file's bytes
	opts   func(key []byte) VerifyOptions
	// want: kind "" means intact with records records.
	kind    string
	file    int // index into the files
	line    int
	seq     int64
	detail  string
	records int
	onlyKey *bool // run for a keyed (true) or plain (false) chain only
}

var verifyCases = []verifyCase{
	{name: "intact", records: verifyN},
	{name: "intact in three files", split: []int{7, 7, 6}, records: verifyN},
	{name: "edited field", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		return editLine(ls, 7, func(l []byte) []byte {
			return bytes.Replace(l, []byte(`"status_code":200`), []byte(`"status_code":403`), 1)
		})
	}, kind: ProblemEdited, line: 7, seq: 7, detail: "hash does not recompute", records: 6},
	{name: "edited white space", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		return editLine(ls, 7, func(l []byte) []byte { return append([]byte("{ "), l[1:]...) })
	}, kind: ProblemEdited, line: 7, seq: 7, detail: "not in canonical form", records: 6},
	{name: "edited seq", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		return editLine(ls, 7, func(l []byte) []byte { return bytes.Replace(l, []byte(`"seq":7}`), []byte(`"seq":70}`), 1) })
	}, kind: ProblemEdited, line: 7, seq: 70, detail: "hash does not recompute", records: 6},
	{name: "duplicated key smuggled in", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		return editLine(ls, 7, func(l []byte) []byte { return append([]byte(`{"event":{"outcome":"failure"},`), l[1:]...) })
	}, kind: ProblemEdited, line: 7, seq: 7, detail: "not in canonical form", records: 6},
	{name: "CRLF line ends", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		out := slices.Clone(ls)
		for i := range out {
			out[i] = append(bytes.Clone(out[i]), '\r')
		}
		return out
	}, kind: ProblemEdited, line: 1, seq: 1, detail: "not in canonical form"},
	{name: "edited and re-hashed", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		c := chainOfLine(t, ls[6])
		return editLine(ls, 7, func(l []byte) []byte { return reseal(t, key, l, c.Seq, c.Prev, setOutcome("failure")) })
	}, kind: ProblemEdited, line: 8, seq: 8, detail: "prev does not match the hash of the previous record (seq 7 at ", records: 7},
	{name: "deleted line", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 7, 7) },
		kind: ProblemDeleted, line: 7, seq: 8, detail: "record seq 7 is missing between ", records: 6},
	{name: "deleted lines", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 7, 9) },
		kind: ProblemDeleted, line: 7, seq: 10, detail: "records seq 7..9 are missing", records: 6},
	{name: "deleted first line", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 1, 1) },
		kind: ProblemDeleted, line: 1, seq: 2, detail: "the chain starts at seq 2: record seq 1 is missing"},
	{name: "deleted first line, partial", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 1, 1) },
		opts: func(key []byte) VerifyOptions { return VerifyOptions{Key: key, Partial: true} }, records: verifyN - 1},
	{name: "inserted copy of an earlier line", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return insLine(ls, 10, ls[2]) },
		kind: ProblemInserted, line: 11, seq: 3, detail: "does not continue the chain (expected seq 11), and the next line", records: 10},
	{name: "inserted duplicate", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return insLine(ls, 5, ls[4]) },
		kind: ProblemInserted, line: 6, seq: 5, detail: "and the next line", records: 5},
	{name: "inserted copy at the end", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return insLine(ls, verifyN, ls[2]) },
		kind: ProblemInserted, line: verifyN + 1, seq: 3, detail: "at the end of the chain", records: verifyN},
	{name: "inserted with a bad hash", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		forged := bytes.Replace(ls[9], []byte(`"seq":10}`), []byte(`"seq":11}`), 1)
		return insLine(ls, 10, bytes.Replace(forged, []byte(`"outcome":"success"`), []byte(`"outcome":"failure"`), 1))
	}, kind: ProblemInserted, line: 11, seq: 11, detail: "does not check out", records: 10},
	{name: "inserted and sealed", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		c := chainOfLine(t, ls[9])
		return insLine(ls, 10, reseal(t, key, ls[9], c.Seq+1, c.Hash, setOutcome("failure")))
	}, kind: ProblemInserted, line: 11, seq: 11, detail: "both claim seq 11 after the same predecessor", records: 10},
	{name: "swapped pair", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return swapLines(ls, 10, 11) },
		kind: ProblemReordered, line: 10, seq: 11, detail: "seq 11 comes before seq 10", records: 9},
	{name: "swapped first pair", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return swapLines(ls, 1, 2) },
		kind: ProblemReordered, line: 1, seq: 2, detail: "the two records are swapped"},
	{name: "swapped last pair", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return swapLines(ls, verifyN-1, verifyN) },
		kind: ProblemReordered, line: verifyN - 1, seq: verifyN, detail: "the two records are swapped", records: verifyN - 2},
	{name: "moved back", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		l := ls[14]
		return insLine(delLines(ls, 15, 15), 17, l) // 1..14 16 17 15 18..
	}, kind: ProblemDeleted, line: 15, seq: 16, detail: "record seq 15 is missing", records: 14},
	{name: "truncated mid-record", raw: func(b []byte) []byte { return b[:len(b)-40] },
		kind: ProblemMalformed, line: verifyN, seq: verifyN, detail: "ends in an incomplete line", records: verifyN - 1},
	{name: "newline lost at the end", raw: func(b []byte) []byte { return b[:len(b)-1] }, records: verifyN},
	{name: "last records cut", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 18, verifyN) }, records: 17},
	{name: "last records cut, head known", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 18, verifyN) },
		opts: func(key []byte) VerifyOptions { return VerifyOptions{Key: key, HeadSeq: verifyN} },
		kind: ProblemDeleted, line: 18, seq: 18, detail: "records seq 18..20 are missing (cut from the end)", records: 17},
	{name: "head hash differs", opts: func(key []byte) VerifyOptions {
		return VerifyOptions{Key: key, HeadSeq: 12, HeadHash: GenesisHash}
	}, kind: ProblemEdited, line: 12, seq: 12, detail: "not the expected head hash", records: 11},
	{name: "garbage line", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return insLine(ls, 4, []byte("hello")) },
		kind: ProblemMalformed, line: 5, seq: 5, detail: "not a JSON object", records: 4},
	{name: "empty line", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return insLine(ls, 4, nil) },
		kind: ProblemMalformed, line: 5, seq: 5, detail: "empty line", records: 4},
	{name: "chain removed", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines {
		return editLine(ls, 3, func(l []byte) []byte {
			m, _ := decodeObject(l)
			delete(m["resetguard"].(map[string]any), "chain")
			d, _ := canonFromMap(m)
			return d.appendTo(nil, nil)
		})
	}, kind: ProblemMalformed, line: 3, seq: 3, detail: "no resetguard.chain", records: 2},
	{name: "wrong key", opts: func(key []byte) VerifyOptions { return VerifyOptions{Key: otherKey} },
		kind: ProblemEdited, line: 1, seq: 1, detail: "chain key"},
	{name: "no key for a keyed chain", opts: func(key []byte) VerifyOptions { return VerifyOptions{} },
		kind: ProblemEdited, line: 1, seq: 1, detail: "hash does not recompute", onlyKey: new(true)},
	{name: "a key for a plain chain", opts: func(key []byte) VerifyOptions { return VerifyOptions{Key: otherKey} },
		kind: ProblemEdited, line: 1, seq: 1, detail: "hash does not recompute", onlyKey: new(false)},

	// Across rotated files (7, 7 and 6 records).
	{name: "last line of a rotated file deleted", split: []int{6, 7, 6}, tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 7, 7) },
		kind: ProblemDeleted, file: 1, line: 1, seq: 8, detail: "record seq 7 is missing", records: 6},
	{name: "rotated file missing", split: []int{7, 6}, tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return delLines(ls, 8, 14) },
		kind: ProblemDeleted, file: 1, line: 1, seq: 15, detail: "records seq 8..14 are missing", records: 7},
	{name: "swapped across files", split: []int{7, 7, 6}, tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return swapLines(ls, 7, 8) },
		kind: ProblemReordered, file: 0, line: 7, seq: 8, detail: "the two records are swapped", records: 6},
	{name: "only the live file", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return ls[14:] },
		kind: ProblemDeleted, file: 0, line: 1, seq: 15, detail: "the chain starts at seq 15"},
	{name: "only the live file, partial", tamper: func(t *testing.T, ls fileLines, key []byte) fileLines { return ls[14:] },
		opts: func(key []byte) VerifyOptions { return VerifyOptions{Key: key, Partial: true} }, records: 6},
}

// writeSplit writes ls into files of split[i] lines each (one file when
// split is nil), applying raw to the last file's bytes, and returns their
// paths.
func writeSplit(t *testing.T, ls fileLines, split []int, raw func([]byte) []byte) []string {
	t.Helper()
	if split == nil {
		split = []int{len(ls)}
	}
	if sum := 0; true {
		for _, k := range split {
			sum += k
		}
		if sum != len(ls) {
			t.Fatalf("split %v of %d lines", split, len(ls))
		}
	}
	dir := t.TempDir()
	var files []string
	at := 0
	for i, k := range split {
		var b []byte
		for _, l := range ls[at : at+k] {
			b = append(append(b, l...), '\n')
		}
		at += k
		if i == len(split)-1 && raw != nil {
			b = raw(b)
		}
		f := filepath.Join(dir, fmt.Sprintf("file%d", i))
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// TestVerifyNamesTheFirstProblem tampers with a chain of 20 records in
// every way the verifier must tell apart, in one file and across rotated
// files, with and without a chain key.
func TestVerifyNamesTheFirstProblem(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		var key []byte
		if keyed {
			key = []byte("the chain key")
		}
		intact := chainLines(t, key, verifyN)
		for _, tt := range verifyCases {
			if tt.onlyKey != nil && *tt.onlyKey != keyed {
				continue
			}
			t.Run(fmt.Sprintf("keyed=%v/%s", keyed, tt.name), func(t *testing.T) {
				ls := intact
				if tt.tamper != nil {
					ls = tt.tamper(t, intact, key)
				}
				files := writeSplit(t, ls, tt.split, tt.raw)
				opts := VerifyOptions{Key: key}
				if tt.opts != nil {
					opts = tt.opts(key)
				}
				rep := fsVerify(t, opts, files...)
				if tt.kind == "" {
					if rep.FirstProblem != nil {
						t.Fatalf("chain broken: %s", rep.FirstProblem)
					}
				} else {
					fsWantProblem(t, rep, tt.kind, files[tt.file], tt.line, tt.seq, tt.detail)
				}
				if rep.Records != tt.records {
					t.Errorf("%d records verified, want %d", rep.Records, tt.records)
				}
			})
		}
	}
}

func TestVerifyEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.log")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyFiles(nil, empty)
	if err != nil || rep.FirstProblem != nil || rep.Records != 0 || rep.Files != 1 || rep.LastHash != GenesisHash {
		t.Errorf("empty file: %+v %v", rep, err)
	}
	if _, err := VerifyFiles(nil, empty, filepath.Join(dir, "missing.log")); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	rep, err = Verify(VerifyOptions{HeadSeq: 3}, empty)
	if err != nil {
		t.Fatal(err)
	}
	fsWantProblem(t, rep, ProblemDeleted, empty, 1, 1, "records seq 1..3 are missing")
}

func TestProblemString(t *testing.T) {
	p := &Problem{File: "audit.log", Line: 7, Seq: 7, Kind: ProblemEdited, Detail: "x"}
	if got, want := p.String(), "edited at audit.log:7 (seq 7): x"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	cs := fixtureEntity(b)
	path := filepath.Join(b.TempDir(), "audit.log")
	s, err := OpenFileSink(FileSinkConfig{Path: path, Fsync: FsyncNever})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := s.Write(fsRecord(cs, i)); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	b.ReportAllocs()
	for b.Loop() {
		rep, err := VerifyFiles(nil, path)
		if err != nil || rep.FirstProblem != nil {
			b.Fatal(err, rep.FirstProblem)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/record")
}
