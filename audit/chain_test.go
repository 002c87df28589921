package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// chainLines writes n records through a FileSink and returns its lines
// (without newlines).
func chainLines(t *testing.T, key []byte, n int) [][]byte {
	t.Helper()
	cs := fixtureEntity(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	s := fsOpen(t, FileSinkConfig{Path: path, ChainKey: key, Fsync: FsyncNever})
	fsWrite(t, s, cs, 1, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// reseal rewrites a line as someone holding the key (or anyone, for a
// plain chain) would: content changed by edit, chain set to seq after
// prev, hash recomputed.
func reseal(t *testing.T, key, line []byte, seq int64, prev string, edit func(m map[string]any)) []byte {
	t.Helper()
	m, err := decodeObject(line)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	d, err := canonFromMap(m)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := sealLine(key, d, seq-1, prev)
	return bytes.TrimSuffix(out, []byte("\n"))
}

func chainOfLine(t *testing.T, line []byte) Chain {
	t.Helper()
	m, err := decodeObject(line)
	if err != nil {
		t.Fatal(err)
	}
	c, err := chainOf(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func setOutcome(v string) func(m map[string]any) {
	return func(m map[string]any) { m["event"].(map[string]any)["outcome"] = v }
}

// The golden files pin the chain format: their lines must verify, and
// sealing what they parse to must give the same bytes back, whatever
// the Record type has become since they were written.
const (
	goldenPlain    = "../testdata/audit/chain.jsonl"
	goldenKeyed    = "../testdata/audit/chain-hmac.jsonl"
	goldenKeyFile  = "../testdata/audit/chain-hmac.key"
	goldenPlainEnd = "1b5f481f5e4e4f2a24c72c08b7230f9a79faa72ffd662a8ae06d1935964e3bea"
)

func TestVerifyGoldenFiles(t *testing.T) {
	key, err := os.ReadFile(goldenKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key = bytes.TrimRight(key, "\r\n")
	for _, tt := range []struct {
		file string
		key  []byte
	}{{goldenPlain, nil}, {goldenKeyed, key}} {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			rep, err := VerifyFiles(tt.key, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if rep.FirstProblem != nil || rep.Records != 5 || rep.Files != 1 {
				t.Fatalf("report %+v, problem %v", rep, rep.FirstProblem)
			}
			b, _ := os.ReadFile(tt.file)
			prevSeq, prev := int64(0), GenesisHash
			for i, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
				got := reseal(t, tt.key, l, prevSeq+1, prev, nil)
				if !bytes.Equal(got, l) {
					t.Fatalf("line %d resealed differs:\ngot  %s\nwant %s", i+1, got, l)
				}
				c := chainOfLine(t, l)
				prevSeq, prev = c.Seq, c.Hash
			}
			if tt.key == nil && rep.LastHash != goldenPlainEnd {
				t.Errorf("last hash %s, want %s", rep.LastHash, goldenPlainEnd)
			}
		})
	}
}

// TestWriteGoldenFiles regenerates the golden files; run with
// RESETGUARD_WRITE_AUDIT_GOLDEN=1 after a deliberate format change.
func TestWriteGoldenFiles(t *testing.T) {
	if os.Getenv("RESETGUARD_WRITE_AUDIT_GOLDEN") != "1" {
		t.Skip("set RESETGUARD_WRITE_AUDIT_GOLDEN=1 to regenerate")
	}
	key, err := os.ReadFile(goldenKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	key = bytes.TrimRight(key, "\r\n")
	cs := fixtureEntity(t)
	for _, g := range []struct {
		file string
		key  []byte
	}{{goldenPlain, nil}, {goldenKeyed, key}} {
		path := filepath.Join(t.TempDir(), "audit.log")
		s := fsOpen(t, FileSinkConfig{Path: path, ChainKey: g.key})
		fsWrite(t, s, cs, 1, 5)
		s.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(g.file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: last hash %s", g.file, lastHashOf(t, path))
	}
}
