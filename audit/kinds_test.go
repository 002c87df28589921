package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// kindRecords are one record of each kind, as the handler and the sink
// write them; the "allowed success with entity" outcome is their request.
func kindRecords(t *testing.T) map[string]*Record {
	t.Helper()
	recs := outcomeRecords(t)
	success := recs["allowed success with entity"]
	intent := NewIntent(success)
	intent.Chain = &Chain{Seq: 41, Prev: strings.Repeat("ab", 32), Hash: strings.Repeat("cd", 32)}
	dryRun := NewIntent(recs["dry run forwards a denied call"])

	// Copies are records of their own, with ids of their own, as the
	// handler builds each record afresh.
	outcome := *success
	outcome.Kind, outcome.IntentSeq, outcome.EventID = KindOutcome, 41, NewEventID()
	failed := *recs["allowed, upstream unreachable"]
	failed.Kind, failed.IntentSeq, failed.EventID = KindOutcome, 41, NewEventID()
	lost := *recs["allowed, client gone during the backend's body"]
	lost.Kind, lost.IntentSeq, lost.EventID = KindOutcome, 41, NewEventID()
	refused := *recs["denied by policy"]
	refused.Kind, refused.EventID = KindRefusal, NewEventID()
	unauthenticated := *recs["unauthenticated"]
	unauthenticated.Kind, unauthenticated.EventID = KindRefusal, NewEventID()

	repair := newRepairRecord(outcomeTime, Repair{Bytes: 812, Offset: 40960, SHA256: strings.Repeat("0f", 32),
		SavedAs: "audit.log.torn-20261125T100000.123456789Z", RetiredSeq: 42})
	repair.Chain = &Chain{Seq: 43, Prev: strings.Repeat("cd", 32), Hash: strings.Repeat("ef", 32)}

	return map[string]*Record{
		"intent":                    intent,
		"intent under dry run":      dryRun,
		"outcome of an intent":      &outcome,
		"failed outcome of intent":  &failed,
		"unknown outcome of intent": &lost,
		"refusal after a decision":  &refused,
		"refusal before identity":   &unauthenticated,
		"gateway_restarted":         gatewayRestarted(intent, outcomeTime.Add(time.Hour)),
		"repair":                    repair,
	}
}

// TestSchemaAcceptsEveryKind: each kind, through the Caddy logger's
// encoder and as a durable file line.
func TestSchemaAcceptsEveryKind(t *testing.T) {
	sch := auditSchema(t)
	for name, r := range kindRecords(t) {
		t.Run(name, func(t *testing.T) {
			line := caddyLine(t, r)
			if err := sch.Validate(decodeLine(t, line)); err != nil {
				t.Errorf("logger copy does not validate: %v\n%s", err, line)
			}
			d, err := newCanonDoc(r)
			if err != nil {
				t.Fatal(err)
			}
			chain := Chain{Seq: 43, Prev: GenesisHash, Hash: GenesisHash}
			file := string(d.appendTo(nil, appendChainJSON(nil, chain)))
			if err := sch.Validate(decodeLine(t, file)); err != nil {
				t.Errorf("file line does not validate: %v\n%s", err, file)
			}
		})
	}
}

// TestSchemaRefusesBadKinds: records that break the write-ahead rules.
func TestSchemaRefusesBadKinds(t *testing.T) {
	sch := auditSchema(t)
	recs := kindRecords(t)
	cs := fixtureEntity(t)
	bad := map[string]struct {
		from string
		mut  func(r *Record)
		edit func(m map[string]any)
	}{
		"unknown kind":                        {from: "outcome of an intent", mut: func(r *Record) { r.Kind = "checkpoint" }},
		"intent with an upstream":             {from: "intent", mut: func(r *Record) { r.Upstream = &Upstream{Status: 200} }},
		"intent with a status":                {from: "intent", mut: func(r *Record) { r.Status = 200 }},
		"intent denied":                       {from: "intent", mut: func(r *Record) { r.Allowed = false }},
		"intent with an outcome":              {from: "intent", mut: func(r *Record) { r.Outcome = OutcomeSuccess }},
		"intent without a decision":           {from: "intent", mut: func(r *Record) { r.Decision = nil }},
		"intent naming an intent":             {from: "intent", mut: func(r *Record) { r.IntentSeq = 3 }},
		"intent with an entity":               {from: "intent", mut: func(r *Record) { r.ChatSession = cs }},
		"intent_seq on a refusal":             {from: "refusal after a decision", mut: func(r *Record) { r.IntentSeq = 3 }},
		"refusal forwarded":                   {from: "outcome of an intent", mut: func(r *Record) { r.Kind = KindRefusal }},
		"gateway_restarted without intent":    {from: "gateway_restarted", mut: func(r *Record) { r.IntentSeq = 0 }},
		"gateway_restarted with an upstream":  {from: "gateway_restarted", mut: func(r *Record) { r.Upstream = &Upstream{} }},
		"gateway_restarted with a status":     {from: "gateway_restarted", mut: func(r *Record) { r.Status = 502 }},
		"gateway_restarted as an intent":      {from: "gateway_restarted", mut: func(r *Record) { r.Kind = KindIntent }},
		"status 0 on a request's outcome":     {from: "failed outcome of intent", mut: func(r *Record) { r.Status = 0 }},
		"allowed without upstream, no reason": {from: "gateway_restarted", mut: func(r *Record) { r.Reason = refusal.UpstreamError }},
		"repair object on an outcome": {from: "outcome of an intent", edit: func(m map[string]any) {
			objAt(m, "resetguard")["repair"] = map[string]any{"bytes": json.Number("1"), "offset": json.Number("0"), "sha256": GenesisHash,
				"saved_as": "a.torn-20261125T100000.123456789Z", "retired_seq": json.Number("1")}
		}},
		// The logger copy has no chain; a line without Caddy's envelope
		// is the durable file's, where a repair record is chained.
		"repair's file line without its chain": {from: "repair", edit: stripEnvelope},
		"repair with a short hash":             {from: "repair", mut: func(r *Record) { r.Repair.SHA256 = "abc" }},
		"repair saved under another name":      {from: "repair", mut: func(r *Record) { r.Repair.SavedAs = "audit.log.old" }},
		"repair of nothing":                    {from: "repair", mut: func(r *Record) { r.Repair.Bytes = 0 }},
		"repair with another reason":           {from: "repair", mut: func(r *Record) { r.Reason = refusal.GatewayRestarted }},
		"repair with http": {from: "repair", edit: func(m map[string]any) {
			m["http"] = map[string]any{"request": map[string]any{"method": "POST"}, "response": map[string]any{"status_code": json.Number("200")}}
		}},
		"repair with a route":       {from: "repair", edit: func(m map[string]any) { objAt(m, "resetguard")["route"] = "rest" }},
		"repair without the repair": {from: "repair", edit: func(m map[string]any) { delete(objAt(m, "resetguard"), "repair") }},
		"request record as a file change": {from: "refusal before identity", edit: func(m map[string]any) {
			objAt(m, "event")["category"] = []any{"file"}
		}},
		"request record without a route": {from: "refusal before identity", edit: func(m map[string]any) {
			delete(objAt(m, "resetguard"), "route")
		}},
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			src := recs[b.from]
			r := *src
			if src.Repair != nil {
				p := *src.Repair
				r.Repair = &p
			}
			if b.mut != nil {
				b.mut(&r)
			}
			m := decodeLine(t, caddyLine(t, &r))
			if b.edit != nil {
				b.edit(m)
			}
			if err := sch.Validate(m); err == nil {
				raw, _ := json.Marshal(m)
				t.Fatalf("record validates, want a failure:\n%s", raw)
			}
		})
	}
}

// TestCanonicalMatchesReferenceForKinds: the direct canonical encoder
// stays byte for byte the reference for the new fields and the repair
// record's shape.
func TestCanonicalMatchesReferenceForKinds(t *testing.T) {
	for name, r := range kindRecords(t) {
		t.Run(name, func(t *testing.T) {
			fast, ref := canonBoth(t, r)
			for k := range fast {
				if !bytes.Equal(fast[k], ref[k]) {
					t.Fatalf("canonical forms differ\ndirect:    %s\nreference: %s", fast[k], ref[k])
				}
			}
		})
	}
}

// TestNewIntent: the intent keeps who, which session and which decision,
// and nothing of what has not happened yet.
func TestNewIntent(t *testing.T) {
	req := outcomeRecords(t)["allowed success with entity"]
	req.Customer = map[string]string{"customer_email": "x"}
	in := NewIntent(req)
	if !isEventID(in.EventID) || in.EventID == req.EventID {
		t.Errorf("intent event.id %q, request's record %q: want an id of its own", in.EventID, req.EventID)
	}
	want := Record{
		Timestamp: req.Timestamp, EventID: in.EventID, Action: req.Action, Allowed: true, Outcome: OutcomeUnknown,
		Duration: req.Duration, RequestID: req.RequestID, Method: req.Method, Path: req.Path, SourceIP: req.SourceIP,
		UserID: req.UserID, UserName: req.UserName, UserDomain: req.UserDomain, PrincipalSource: req.PrincipalSource,
		Route: req.Route, SessionID: req.SessionID, CredScheme: req.CredScheme, Fingerprint: req.Fingerprint,
		Decision: req.Decision, Kind: KindIntent,
	}
	if got := *in; !equalRecords(got, want) {
		t.Errorf("intent %+v\nwant   %+v", got, want)
	}
}

func equalRecords(a, b Record) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
