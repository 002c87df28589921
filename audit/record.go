// Package audit builds and writes ResetGuard's audit records (schema
// resetguard.audit/v1, aligned with the Elastic Common Schema), with the
// opt-in customer fields of the ChatSessionEntity a reset returns.
package audit

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Schema names the version of the record.
const Schema = "resetguard.audit/v1"

// ECSVersion is the Elastic Common Schema version the field names follow.
const ECSVersion = "8.11"

// Event outcomes (ECS event.outcome).
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeUnknown = "unknown"
)

// Record is one audit record: everything known about one guarded request.
// It holds no credential, cookie, SessionKey, chat text or customer data:
// the types it is built from have no field for them.
type Record struct {
	Timestamp time.Time
	EventID   string
	Action    string
	// Allowed is ECS event.type: "allowed" when the request was forwarded,
	// "denied" when the guard refused it.
	Allowed  bool
	Outcome  string
	Reason   string
	Duration time.Duration

	RequestID string
	Method    string
	Status    int
	Path      string
	SourceIP  string

	UserID, UserName, UserDomain string
	// PrincipalSource says where the user fields came from: "jwt",
	// "backend" or "none".
	PrincipalSource string

	Route       string
	SessionID   int32 // the id the request asked to reset; 0 when unreadable
	CredScheme  string
	Fingerprint string
	Decision    *Decision
	// Forwarded is the request the guard sends the backend when it
	// allows the reset: nil on a refusal.
	Forwarded   *Forwarded
	Upstream    *Upstream
	ChatSession *ChatSession
	// Chain is the record's place in a FileSink's hash chain, set by
	// FileSink.Write; nil for a record no chained sink has written.
	Chain *Chain
	// Fallback marks a record that the durable file sink could not take:
	// this logger copy is the only one.
	Fallback bool
	// Customer holds the customer fields a config opted in to, hashed or
	// in clear (see CustomerRedactor); nil by default.
	Customer map[string]string

	// Kind is the record's place in the write-ahead protocol
	// (resetguard.kind): KindIntent, KindOutcome, KindRefusal or
	// KindRepair; empty in records written before kinds existed.
	Kind string
	// IntentSeq links an outcome to its intent: the intent's chain seq in
	// the durable file (resetguard.intent_seq); 0 when there is none.
	IntentSeq int64
	// Repair describes the sink's repair; written only in a KindRepair
	// record.
	Repair *Repair
}

// Decision is the policy's part in the record; nil when the policy was not
// consulted (the request failed an earlier step).
type Decision struct {
	Allow    bool
	DryRun   bool
	Reasons  []string
	Query    string
	Revision string
	Eval     time.Duration
}

// Forwarded is what the backend receives for an allowed reset: the
// request the guard rebuilt from what it decided, not the client's
// spelling of it.
type Forwarded struct {
	// Path is the escaped path sent on.
	Path string
	// Body is the body the guard wrote in place of the client's (the
	// Agents route's {"ChatSessionId":N}); "" when the client's body is
	// sent as read (SOAP) or none is sent (REST).
	Body string
}

// Upstream is the backend's part; nil when the request was not forwarded.
type Upstream struct {
	Status      int
	Duration    time.Duration
	ContentType string
	Error       string
	// EntityRead reports whether the ChatSessionEntity was decoded from
	// the response; EntityError says why not.
	EntityRead  bool
	EntityError string
}

// MarshalLogObject writes the record's top-level fields; used with
// zap.Inline so that a JSON log encoder emits the ECS document as is.
func (r *Record) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if r.Kind == KindRepair {
		// Not about a request: no http, url, user or route to write.
		return r.marshalRepairRecord(enc)
	}
	enc.AddString("@timestamp", r.Timestamp.UTC().Format(time.RFC3339Nano))
	enc.AddString("schema", Schema)
	_ = enc.AddObject("ecs", objectFunc(func(e zapcore.ObjectEncoder) error {
		e.AddString("version", ECSVersion)
		return nil
	}))
	_ = enc.AddObject("event", objectFunc(r.marshalEvent))
	_ = enc.AddObject("http", objectFunc(func(e zapcore.ObjectEncoder) error {
		_ = e.AddObject("request", objectFunc(func(e zapcore.ObjectEncoder) error {
			addString(e, "id", r.RequestID)
			e.AddString("method", r.Method)
			return nil
		}))
		return e.AddObject("response", objectFunc(func(e zapcore.ObjectEncoder) error {
			e.AddInt("status_code", r.Status)
			return nil
		}))
	}))
	_ = enc.AddObject("url", objectFunc(func(e zapcore.ObjectEncoder) error {
		e.AddString("path", r.Path)
		return nil
	}))
	if r.SourceIP != "" {
		_ = enc.AddObject("source", objectFunc(func(e zapcore.ObjectEncoder) error {
			e.AddString("ip", r.SourceIP)
			return nil
		}))
	}
	if r.UserID != "" || r.UserName != "" || r.UserDomain != "" {
		_ = enc.AddObject("user", objectFunc(func(e zapcore.ObjectEncoder) error {
			addString(e, "id", r.UserID)
			addString(e, "name", r.UserName)
			addString(e, "domain", r.UserDomain)
			return nil
		}))
	}
	return enc.AddObject("resetguard", objectFunc(r.marshalResetGuard))
}

func (r *Record) marshalEvent(e zapcore.ObjectEncoder) error {
	addString(e, "id", r.EventID)
	e.AddString("kind", "event")
	_ = e.AddArray("category", stringArray{"api", "iam"})
	typ := "denied"
	if r.Allowed {
		typ = "allowed"
	}
	_ = e.AddArray("type", stringArray{typ})
	e.AddString("action", r.Action)
	e.AddString("outcome", r.Outcome)
	addString(e, "reason", r.Reason)
	e.AddInt64("duration", int64(r.Duration))
	return nil
}

func (r *Record) marshalResetGuard(e zapcore.ObjectEncoder) error {
	e.AddString("route", r.Route)
	addString(e, "kind", r.Kind)
	if r.IntentSeq > 0 {
		e.AddInt64("intent_seq", r.IntentSeq)
	}
	addString(e, "principal_source", r.PrincipalSource)
	if r.Fallback {
		e.AddBool("audit_fallback", true)
	}
	if r.SessionID > 0 {
		e.AddInt32("session_id", r.SessionID)
	}
	if r.CredScheme != "" {
		_ = e.AddObject("credential", objectFunc(func(e zapcore.ObjectEncoder) error {
			e.AddString("scheme", r.CredScheme)
			addString(e, "fingerprint", r.Fingerprint)
			return nil
		}))
	}
	if d := r.Decision; d != nil {
		_ = e.AddObject("decision", objectFunc(func(e zapcore.ObjectEncoder) error {
			e.AddBool("allow", d.Allow)
			e.AddBool("dry_run", d.DryRun)
			_ = e.AddArray("reasons", stringArray(d.Reasons))
			e.AddString("query", d.Query)
			e.AddString("policy_revision", d.Revision)
			e.AddInt64("eval_ns", int64(d.Eval))
			return nil
		}))
	}
	if f := r.Forwarded; f != nil {
		_ = e.AddObject("forwarded", objectFunc(func(e zapcore.ObjectEncoder) error {
			e.AddString("path", f.Path)
			addString(e, "body", f.Body)
			return nil
		}))
	}
	if u := r.Upstream; u != nil {
		_ = e.AddObject("upstream", objectFunc(func(e zapcore.ObjectEncoder) error {
			e.AddInt("status", u.Status)
			e.AddInt64("duration_ns", int64(u.Duration))
			addString(e, "content_type", u.ContentType)
			addString(e, "error", u.Error)
			e.AddBool("entity_read", u.EntityRead)
			addString(e, "entity_error", u.EntityError)
			return nil
		}))
	}
	if cs := r.ChatSession; cs != nil {
		_ = e.AddObject("chat_session", chatSessionFields{cs, r.Customer})
	}
	addChain(e, r.Chain)
	return nil
}

// addChain writes resetguard.chain when the record has been chained.
func addChain(e zapcore.ObjectEncoder, c *Chain) {
	if c == nil {
		return
	}
	_ = e.AddObject("chain", objectFunc(func(e zapcore.ObjectEncoder) error {
		e.AddInt64("seq", c.Seq)
		e.AddString("prev", c.Prev)
		e.AddString("hash", c.Hash)
		return nil
	}))
}

// chatSessionFields writes the chat_session block; kept apart from
// ChatSession so that the entity type stays a plain data struct.
type chatSessionFields struct {
	cs       *ChatSession
	customer map[string]string
}

func (f chatSessionFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	cs := f.cs
	e.AddInt32("id", cs.ID)
	e.AddInt32("topic_id", cs.TopicID)
	e.AddString("status", cs.Status)
	e.AddBool("chatbot_is_active", cs.ChatbotIsActive)
	addIDPtr(e, "user_associate_id", cs.UserAssociateID)
	addIDPtr(e, "transfer_to_associate_id", cs.TransferToAssociateID)
	e.AddInt32("initial_queue_pos", cs.InitialQueuePos)
	e.AddInt32("alert_level", cs.AlertLevel)
	e.AddInt32("rank", cs.Rank)
	e.AddString("flags", cs.Flags)
	e.AddInt32("rating", cs.Rating)
	addTime(e, "when_requested", cs.WhenRequested)
	addTime(e, "when_started", cs.WhenStarted)
	addTime(e, "when_ended", cs.WhenEnded)
	addTime(e, "when_idle", cs.WhenIdle)
	if len(f.customer) > 0 {
		_ = e.AddObject("customer", objectFunc(func(e zapcore.ObjectEncoder) error {
			for _, k := range slices.Sorted(maps.Keys(f.customer)) {
				e.AddString(k, f.customer[k])
			}
			return nil
		}))
	}
	return nil
}

// addIDPtr writes null for an absent associate, so that consumers can
// tell "no agent" from a missing field.
func addIDPtr(e zapcore.ObjectEncoder, key string, v *int32) {
	if v == nil {
		_ = e.AddReflected(key, nil)
		return
	}
	e.AddInt32(key, *v)
}

func addTime(e zapcore.ObjectEncoder, key string, t time.Time) {
	if t.IsZero() {
		_ = e.AddReflected(key, nil)
		return
	}
	e.AddString(key, t.UTC().Format(time.RFC3339Nano))
}

func addString(e zapcore.ObjectEncoder, key, v string) {
	if v != "" {
		e.AddString(key, v)
	}
}

type objectFunc func(zapcore.ObjectEncoder) error

func (f objectFunc) MarshalLogObject(e zapcore.ObjectEncoder) error { return f(e) }

type stringArray []string

func (a stringArray) MarshalLogArray(e zapcore.ArrayEncoder) error {
	for _, s := range a {
		e.AppendString(s)
	}
	return nil
}

// Sink writes records to a zap logger, normally Caddy's
// http.handlers.reset_guard.audit, which operators route with Caddy's own
// log options.
type Sink struct {
	log *zap.Logger
}

// NewSink returns a Sink writing to log.
func NewSink(log *zap.Logger) *Sink { return &Sink{log: log} }

// Write emits r as one log entry whose message is the action, so that the
// entry is one JSON line with the record's fields at the top level.
func (s *Sink) Write(r *Record) {
	s.log.Info(r.Action, zap.Inline(r))
}

// FormatID renders an associate id for ECS user.id, a string field.
func FormatID(id int32) string { return strconv.FormatInt(int64(id), 10) }
