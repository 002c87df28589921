package audit

import (
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// Record kinds (resetguard.kind): a record's place in the write-ahead
// protocol. An allowed reset has an intent, made durable before the request
// is forwarded, and an outcome that names it by IntentSeq; a refused request
// has one refusal; the sink writes repairs about its own file.
const (
	// KindIntent: the policy allowed the reset and it is about to be
	// forwarded; nothing has happened yet (event.outcome unknown, status 0).
	// Written to the durable file only.
	KindIntent = "intent"
	// KindOutcome: the final record of a forwarded request, or the sink's
	// gateway_restarted outcome for an intent a crash left open.
	KindOutcome = "outcome"
	// KindRefusal: a request the guard never forwarded; its only record.
	KindRefusal = "refusal"
	// KindRepair: the sink's note of a repair it made to its file (a torn
	// line cut); not about a request.
	KindRepair = "repair"
)

// ActionRepair is event.action of a repair record.
const ActionRepair = "audit_file.repair"

// Repair is what a KindRepair record says about a torn last line the sink
// cut from the live file (resetguard.repair). The bytes themselves are kept
// in SavedAs, beside the live file.
type Repair struct {
	Bytes  int64  // how many bytes were cut
	Offset int64  // where they started in the live file
	SHA256 string // hex SHA-256 of the cut bytes, to match them to SavedAs
	// SavedAs is the base name of the file holding the cut bytes, in the
	// live file's directory: <live file>.torn-<UTC timestamp>.
	SavedAs string
	// RetiredSeq is the seq the torn line held (or would have held). The
	// repair record takes the seq after it, so no record in the file ever
	// carries a seq that a lost or torn record may have been given.
	RetiredSeq int64
}

// MarshalLogObject writes resetguard.repair.
func (p *Repair) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddInt64("bytes", p.Bytes)
	e.AddInt64("offset", p.Offset)
	e.AddString("sha256", p.SHA256)
	e.AddString("saved_as", p.SavedAs)
	e.AddInt64("retired_seq", p.RetiredSeq)
	return nil
}

// marshalRepairRecord writes a KindRepair record: ECS names a change to a
// file (event.category file, event.type change: an expected type of file
// in ECS 8.11), and there is no request, so no http, url, user or
// resetguard.route.
func (r *Record) marshalRepairRecord(enc zapcore.ObjectEncoder) error {
	addTimeString(enc, "@timestamp", r.Timestamp)
	enc.AddString("schema", Schema)
	_ = enc.AddObject("ecs", ecsFields{})
	_ = enc.AddObject("event", objectFunc(func(e zapcore.ObjectEncoder) error {
		addString(e, "id", r.EventID)
		e.AddString("kind", "event")
		_ = e.AddArray("category", categoryFile)
		_ = e.AddArray("type", typeChange)
		e.AddString("action", r.Action)
		e.AddString("outcome", r.Outcome)
		addString(e, "reason", r.Reason)
		e.AddInt64("duration", int64(r.Duration))
		return nil
	}))
	return enc.AddObject("resetguard", objectFunc(func(e zapcore.ObjectEncoder) error {
		e.AddString("kind", r.Kind)
		if r.Repair != nil {
			_ = e.AddObject("repair", r.Repair)
		}
		return nil
	}))
}

// NewIntent returns the intent record for r, a request the policy allowed
// (or that dry-run mode forwards) and that is about to be forwarded: who,
// from where, which session, which credential, which decision under which
// policy revision. Nothing has happened yet, so it has no upstream, entity
// or reason, event.outcome is unknown and http.response.status_code is 0.
// It is a record of its own, so it gets its own event.id; RequestID ties
// it to r. r is not changed; the Decision is shared, not copied.
func NewIntent(r *Record) *Record {
	return &Record{
		Timestamp: r.Timestamp, EventID: NewEventID(), Action: r.Action,
		Allowed: true, Outcome: OutcomeUnknown, Duration: r.Duration,
		RequestID: r.RequestID, Method: r.Method, Path: r.Path, SourceIP: r.SourceIP,
		UserID: r.UserID, UserName: r.UserName, UserDomain: r.UserDomain,
		PrincipalSource: r.PrincipalSource,
		Route:           r.Route, SessionID: r.SessionID,
		CredScheme: r.CredScheme, Fingerprint: r.Fingerprint,
		Decision: r.Decision, Forwarded: r.Forwarded,
		Kind: KindIntent,
	}
}

// gatewayRestarted is the outcome the sink appends, when it opens, for an
// intent (read back from the file, so with its Chain) that no outcome
// names: the gateway stopped while the request was in flight, so whether
// the reset reached the backend is unknown. It keeps the intent's facts,
// request id and @timestamp (the request's arrival), with an event.id of
// its own; its duration runs to now.
func gatewayRestarted(intent *Record, now time.Time) *Record {
	out := NewIntent(intent)
	out.Kind, out.IntentSeq = KindOutcome, intent.Chain.Seq
	out.Reason = refusal.GatewayRestarted
	out.Duration = max(0, now.Sub(intent.Timestamp))
	return out
}

// newRepairRecord is the record of a torn line cut at open.
func newRepairRecord(now time.Time, p Repair) *Record {
	return &Record{
		Timestamp: now, EventID: NewEventID(), Action: ActionRepair, Outcome: OutcomeSuccess,
		Reason: refusal.TornLineCut, Kind: KindRepair, Repair: &p,
	}
}
