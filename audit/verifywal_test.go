package audit

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sealedFile writes recs as a chain where record i has seq seqs[i] (and
// prev the hash of the record before, whatever its seq): a way to build
// chains with gaps that no FileSink writes.
func sealedFile(t *testing.T, recs []*Record, seqs []int64) string {
	t.Helper()
	var b []byte
	prev := GenesisHash
	for i, r := range recs {
		d, err := newCanonDoc(r)
		if err != nil {
			t.Fatal(err)
		}
		line, c := sealLine(nil, d, seqs[i]-1, prev)
		b, prev = append(b, line...), c.Hash
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func tornRepair(retired int64) *Record {
	return newRepairRecord(outcomeTime, Repair{Bytes: 10, Offset: 100, SHA256: GenesisHash,
		SavedAs: "audit.log.torn-20261125T100000.000000000Z", RetiredSeq: retired})
}

// TestVerifyRetiredSeq: the one gap a chain may have is the seq a repair
// record names as retired, directly before it.
func TestVerifyRetiredSeq(t *testing.T) {
	cs := fixtureEntity(t)
	r := func(i int) *Record { return walRequest(cs, i) }
	tests := []struct {
		name    string
		recs    []*Record
		seqs    []int64
		kind    string // "" : intact
		records int
		detail  string
	}{
		{"repair retires the seq before it", []*Record{r(1), r(2), tornRepair(3), r(4)}, []int64{1, 2, 4, 5}, "", 4, ""},
		{"repair retires seq 1", []*Record{tornRepair(1), r(2)}, []int64{2, 3}, "", 2, ""},
		{"a gap without a repair", []*Record{r(1), r(2), r(3)}, []int64{1, 2, 4}, ProblemEdited, 2, "the seq was changed"},
		{"repair naming another seq", []*Record{r(1), r(2), tornRepair(2)}, []int64{1, 2, 4}, ProblemEdited, 2, "the seq was changed"},
		{"repair skipping two seqs", []*Record{r(1), tornRepair(2)}, []int64{1, 4}, ProblemEdited, 1, "the seq was changed"},
		{"repair that retires nothing", []*Record{r(1), tornRepair(2)}, []int64{1, 2}, "", 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := sealedFile(t, tt.recs, tt.seqs)
			rep := fsVerify(t, VerifyOptions{}, path)
			switch {
			case tt.kind == "" && rep.FirstProblem != nil:
				t.Fatalf("chain broken: %s", rep.FirstProblem)
			case tt.kind != "" && (rep.FirstProblem == nil || rep.FirstProblem.Kind != tt.kind || !strings.Contains(rep.FirstProblem.Detail, tt.detail)):
				t.Fatalf("problem %v, want %s ...%s...", rep.FirstProblem, tt.kind, tt.detail)
			case rep.Records != tt.records:
				t.Fatalf("%d records verified, want %d", rep.Records, tt.records)
			}
		})
	}
}

// TestVerifyReportsOpenIntents: intents no outcome names, at the end of
// the files verified; not a problem.
func TestVerifyReportsOpenIntents(t *testing.T) {
	cs := fixtureEntity(t)
	intent := func(i int) *Record { return NewIntent(walRequest(cs, i)) }
	outcome := func(i int, seq int64) *Record {
		r := walRequest(cs, i)
		r.Kind, r.IntentSeq = KindOutcome, seq
		return r
	}
	tests := []struct {
		name    string
		recs    []*Record
		opts    VerifyOptions
		first   int64 // seq of the first record
		open    []int64
		repairs int
	}{
		{"none", []*Record{intent(1), outcome(1, 1)}, VerifyOptions{}, 1, nil, 0},
		{"one in flight", []*Record{intent(1), outcome(1, 1), intent(2)}, VerifyOptions{}, 1, []int64{3}, 0},
		{"out of order", []*Record{intent(1), intent(2), intent(3), outcome(2, 2)}, VerifyOptions{}, 1, []int64{1, 3}, 0},
		{"closed by gateway_restarted", []*Record{intent(1), gatewayRestartedAt(intent(1), 1)}, VerifyOptions{}, 1, nil, 0},
		{"outcome of an intent in an older file", []*Record{outcome(1, 7), intent(2)}, VerifyOptions{Partial: true}, 10, []int64{11}, 0},
		{"with a repair", []*Record{intent(1), tornRepair(2)}, VerifyOptions{}, 1, []int64{1}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seqs := make([]int64, len(tt.recs))
			for i := range seqs {
				seqs[i] = tt.first + int64(i)
				if tt.recs[i].Kind == KindRepair {
					seqs[i]++ // after its retired seq
				}
			}
			rep := fsVerify(t, tt.opts, sealedFile(t, tt.recs, seqs))
			if rep.FirstProblem != nil {
				t.Fatalf("chain broken: %s", rep.FirstProblem)
			}
			if rep.OpenIntents != len(tt.open) || !reflect.DeepEqual(rep.OpenIntentSeqs, tt.open) || rep.Repairs != tt.repairs {
				t.Errorf("open intents %d %v, repairs %d; want %v, %d", rep.OpenIntents, rep.OpenIntentSeqs, rep.Repairs, tt.open, tt.repairs)
			}
		})
	}
}

func gatewayRestartedAt(intent *Record, seq int64) *Record {
	intent.Chain = &Chain{Seq: seq}
	return gatewayRestarted(intent, outcomeTime)
}
