// Package audit builds and writes ResetGuard's audit records (schema
// resetguard.audit/v1, aligned with the Elastic Common Schema), with the
// opt-in customer fields of the ChatSessionEntity a reset returns.
package audit

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Schema names the version of the record.
const Schema = "resetguard.audit/v1"

// ECSVersion is the Elastic Common Schema version the record conforms to,
// as ECS wants ecs.version: a full version. Records written before it was
// (testdata/audit/chain.jsonl holds some) say "8.11".
const ECSVersion = "8.11.0"

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
	// EventID is ECS event.id, unique per record (NewEventID): an
	// allowed reset's intent and outcome are two records with two ids,
	// both naming the request by RequestID. Whoever builds a record sets
	// it; the encoders only write it, so that the logger copy and the
	// durable line of one record carry the same id.
	EventID string
	Action  string
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
	// FileSink.Write; nil for a record no chained sink has written. It
	// is not part of the record's encoding: the sink inserts
	// resetguard.chain into the durable line itself, so the Caddy
	// logger's copy of the same record has none.
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
//
// Each nested object is the record (or one of its parts) seen through a
// named type whose MarshalLogObject writes that object: a pointer in an
// interface costs no allocation, where a closure over the record would
// cost one per object, twice per record (the logger and the durable
// file each walk it once).
func (r *Record) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	if r.Kind == KindRepair {
		// Not about a request: no http, url, user or route to write.
		return r.marshalRepairRecord(enc)
	}
	addTimeString(enc, "@timestamp", r.Timestamp)
	enc.AddString("schema", Schema)
	_ = enc.AddObject("ecs", ecsFields{})
	_ = enc.AddObject("event", (*eventFields)(r))
	_ = enc.AddObject("http", (*httpFields)(r))
	_ = enc.AddObject("url", (*urlFields)(r))
	if _, ok := ecsIP(r.SourceIP); ok {
		_ = enc.AddObject("source", (*sourceFields)(r))
	}
	if r.UserID != "" || r.UserName != "" || r.UserDomain != "" {
		_ = enc.AddObject("user", (*userFields)(r))
	}
	return enc.AddObject("resetguard", (*resetGuardFields)(r))
}

// The record's objects, each written by its type's MarshalLogObject.
type (
	ecsFields          struct{}
	eventFields        Record
	httpFields         Record
	httpRequestFields  Record
	httpResponseFields Record
	urlFields          Record
	sourceFields       Record
	userFields         Record
	resetGuardFields   Record
	credentialFields   Record
	decisionFields     Decision
	forwardedFields    Forwarded
	upstreamFields     Upstream
	chatSessionFields  Record
	customerFields     map[string]string
)

// The fixed arrays of event.category and event.type, shared so that
// writing them allocates nothing.
//
// A request's record is category api alone: ECS 8.11 expects allowed and
// denied as types of api (and of network and intrusion_detection, which
// describe connections and IDS alerts, not an API call a guard decides),
// but not of iam, whose expected types (admin, change, creation,
// deletion, group, info, user) are about managing users and groups, which
// a chat-session reset is not. See docs/audit.md, "ECS conformance".
var (
	categoryAPI  = &stringArray{"api"}
	typeAllowed  = &stringArray{"allowed"}
	typeDenied   = &stringArray{"denied"}
	categoryFile = &stringArray{"file"}
	typeChange   = &stringArray{"change"}
)

func (ecsFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("version", ECSVersion)
	return nil
}

func (f *eventFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	r := (*Record)(f)
	addString(e, "id", r.EventID)
	e.AddString("kind", "event")
	_ = e.AddArray("category", categoryAPI)
	typ := typeDenied
	if r.Allowed {
		typ = typeAllowed
	}
	_ = e.AddArray("type", typ)
	e.AddString("action", r.Action)
	e.AddString("outcome", r.Outcome)
	addString(e, "reason", r.Reason)
	e.AddInt64("duration", int64(r.Duration))
	return nil
}

func (f *httpFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	_ = e.AddObject("request", (*httpRequestFields)(f))
	return e.AddObject("response", (*httpResponseFields)(f))
}

func (f *httpRequestFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	addString(e, "id", f.RequestID)
	e.AddString("method", f.Method)
	return nil
}

func (f *httpResponseFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddInt("status_code", f.Status)
	return nil
}

func (f *urlFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("path", f.Path)
	return nil
}

func (f *sourceFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	ip, _ := ecsIP(f.SourceIP)
	e.AddString("ip", ip)
	return nil
}

// ecsIP returns s as ECS source.ip (type ip) can hold it: an IPv4 or
// IPv6 address without an IPv6 zone, which Elasticsearch's ip type does
// not take (Caddy cuts it from {client_ip} the same way). Anything else,
// such as a Unix socket's "@" remote address, is not written: one
// unparsable ip value makes Elasticsearch refuse the whole document.
// It allocates nothing; the record calls it once per encoding to decide
// and once to write.
func ecsIP(s string) (string, bool) {
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return "", false
	}
	return s, true
}

func (f *userFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	addString(e, "id", f.UserID)
	addString(e, "name", f.UserName)
	addString(e, "domain", f.UserDomain)
	return nil
}

func (f *resetGuardFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	r := (*Record)(f)
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
		_ = e.AddObject("credential", (*credentialFields)(r))
	}
	if d := r.Decision; d != nil {
		_ = e.AddObject("decision", (*decisionFields)(d))
	}
	if f := r.Forwarded; f != nil {
		_ = e.AddObject("forwarded", (*forwardedFields)(f))
	}
	if u := r.Upstream; u != nil {
		_ = e.AddObject("upstream", (*upstreamFields)(u))
	}
	if r.ChatSession != nil {
		_ = e.AddObject("chat_session", (*chatSessionFields)(r))
	}
	return nil
}

func (f *credentialFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("scheme", f.CredScheme)
	addString(e, "fingerprint", f.Fingerprint)
	return nil
}

func (d *decisionFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddBool("allow", d.Allow)
	e.AddBool("dry_run", d.DryRun)
	_ = e.AddArray("reasons", (*stringArray)(&d.Reasons))
	e.AddString("query", d.Query)
	e.AddString("policy_revision", d.Revision)
	e.AddInt64("eval_ns", int64(d.Eval))
	return nil
}

func (f *forwardedFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("path", f.Path)
	addString(e, "body", f.Body)
	return nil
}

func (u *upstreamFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddInt("status", u.Status)
	e.AddInt64("duration_ns", int64(u.Duration))
	addString(e, "content_type", u.ContentType)
	addString(e, "error", u.Error)
	e.AddBool("entity_read", u.EntityRead)
	addString(e, "entity_error", u.EntityError)
	return nil
}

// MarshalLogObject writes the chat_session block from the record's
// entity and customer fields; kept apart from ChatSession so that the
// entity type stays a plain data struct.
func (f *chatSessionFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	cs := f.ChatSession
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
	if len(f.Customer) > 0 {
		_ = e.AddObject("customer", customerFields(f.Customer))
	}
	return nil
}

func (c customerFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	for _, k := range slices.Sorted(maps.Keys(c)) {
		e.AddString(k, c[k])
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
	addTimeString(e, key, t)
}

// addTimeString writes t in UTC as an RFC 3339 string; the canonical
// encoder formats it in place, without the string.
func addTimeString(e zapcore.ObjectEncoder, key string, t time.Time) {
	if c, ok := e.(*canonObject); ok {
		c.addTime(key, t)
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

// stringArray writes a JSON array of strings; passed as a pointer
// (*stringArray) it is put in an interface without an allocation.
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

// NewEventID returns a fresh ECS event.id: a random (version 4) UUID as
// RFC 9562 spells it, 122 random bits from crypto/rand, so ids do not
// collide across records, restarts and gateways, and say nothing about
// how many records came before. It costs about 0.1 µs (two per allowed
// reset with a durable file: the intent and the outcome).
func NewEventID() string {
	var u [16]byte
	// crypto/rand.Read does not fail (since Go 1.24 it crashes the
	// program rather than return predictable bytes).
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}

// FormatID renders an associate id for ECS user.id, a string field.
func FormatID(id int32) string { return strconv.FormatInt(int64(id), 10) }
