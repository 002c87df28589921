package audit

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
)

// What verification reads of the write-ahead protocol (see kinds.go).

// walFacts are a line's write-ahead fields.
type walFacts struct {
	kind      string // resetguard.kind
	intentSeq int64  // resetguard.intent_seq of an outcome
	retired   int64  // resetguard.repair.retired_seq of a repair record
}

// walFactsOf reads them from a decoded line; absent fields are zero.
func walFactsOf(m map[string]any) walFacts {
	rg, _ := m["resetguard"].(map[string]any)
	var w walFacts
	w.kind, _ = rg["kind"].(string)
	w.intentSeq = jsonInt(rg["intent_seq"])
	if rp, ok := rg["repair"].(map[string]any); ok && w.kind == KindRepair {
		w.retired = jsonInt(rp["retired_seq"])
	}
	return w
}

func jsonInt(v any) int64 {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		return 0
	}
	return i
}

// retires reports whether p is a repair record that continues the chain
// after expPrev by skipping exactly expSeq, the seq it names as retired
// (a torn line's): the one gap in seq a chain may have, and only where a
// hashed record says why.
func (p *parsedLine) retires(expSeq int64, expPrev string) bool {
	return p.wal.kind == KindRepair && p.wal.retired == expSeq && p.Seq == expSeq+1 && p.Prev == expPrev
}

// walTracker follows intents and outcomes through verification.
type walTracker struct {
	open    map[int64]struct{} // intents no outcome has named yet
	repairs int
}

func (w *walTracker) see(p *parsedLine) {
	switch {
	case p.wal.kind == KindIntent:
		if w.open == nil {
			w.open = map[int64]struct{}{}
		}
		w.open[p.Seq] = struct{}{}
	case p.wal.kind == KindRepair:
		w.repairs++
	}
	if p.wal.intentSeq > 0 {
		// An outcome whose intent is in an earlier file not given
		// (--partial) names nothing here; that is not a problem.
		delete(w.open, p.wal.intentSeq)
	}
}

func (w *walTracker) report(rep *VerifyReport) {
	rep.OpenIntentSeqs = slices.Sorted(maps.Keys(w.open))
	rep.OpenIntents = len(rep.OpenIntentSeqs)
	rep.Repairs = w.repairs
}
