package resetguard

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/resetguard/caddy-resetguard/audit"
)

// emit writes the exchange's one record, counts it, and publishes the
// outcome as placeholders before any response leaves, so that deferred
// header operations, error routes and access logs see them.
func (h *Handler) emit(x *exchange, outcome, reason string) {
	if x.audited {
		return
	}
	x.audited = true
	kind := audit.KindRefusal
	if x.upstream != nil {
		kind = audit.KindOutcome
	}
	rec := x.record(kind, outcome, reason)
	h.writeRecord(rec)
	typ := "denied"
	if rec.Allowed {
		typ = "allowed"
	}
	scheme := rec.CredScheme
	if scheme == "" {
		scheme = "none"
	}
	metricsFor(x.r.Context()).request(rec.Route, typ, outcome, scheme)
	h.counts.add(typ, outcome)
	x.setPlaceholders(rec)
}

// record builds an audit record of kind from the facts the steps
// gathered: the intent before forwarding, the outcome after it, or the
// one record of a refusal.
func (x *exchange) record(kind, outcome, reason string) *audit.Record {
	rec := &audit.Record{
		Timestamp:   x.start,
		EventID:     audit.NewEventID(), // one per record; the request's id is RequestID
		Action:      action,
		Kind:        kind,
		Allowed:     x.upstream != nil || kind == audit.KindIntent,
		Outcome:     outcome,
		Reason:      reason,
		Duration:    time.Since(x.start),
		RequestID:   x.requestID,
		Method:      x.r.Method,
		Status:      x.status,
		Path:        x.path,
		SourceIP:    x.sourceIP,
		Route:       string(x.t.Route),
		SessionID:   x.sessionID,
		CredScheme:  string(x.cred.Scheme),
		Fingerprint: x.fingerprint,
		Decision:    x.decision,
		Forwarded:   x.forwardedIfAllowed(kind),
		Upstream:    x.upstream,
		ChatSession: x.chatSession,
		Customer:    x.customer,
	}
	if kind == audit.KindOutcome {
		rec.IntentSeq = x.intentSeq
	}
	// Who is calling, from the most specific fact known: the principal
	// over the credential over the path's tenant.
	rec.UserName = x.cred.Username
	rec.UserDomain = firstNonEmpty(x.cred.Tenant, x.t.Tenant)
	if p := x.principal; p != nil {
		if p.AssociateID != 0 {
			rec.UserID = strconv.FormatInt(p.AssociateID, 10)
		}
		rec.UserName = firstNonEmpty(p.UserName, p.Subject, rec.UserName)
		rec.UserDomain = firstNonEmpty(p.Tenant, rec.UserDomain)
		rec.PrincipalSource = p.Source
	}
	return rec
}

// forwardedIfAllowed is the planned request on a record of a request
// that is, or is about to be, forwarded; nil on a refusal.
func (x *exchange) forwardedIfAllowed(kind string) *audit.Forwarded {
	if kind == audit.KindIntent || x.upstream != nil {
		return x.forwarded
	}
	return nil
}

// setPlaceholders sets {http.reset_guard.*} on the request's replacer.
// None of them can carry a credential: the principal is a user name,
// subject or associate id, never a token.
func (x *exchange) setPlaceholders(rec *audit.Record) {
	repl, ok := x.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	var reasons []string
	if d := rec.Decision; d != nil && len(d.Reasons) > 0 {
		reasons = d.Reasons
	} else if rec.Reason != "" {
		reasons = []string{rec.Reason}
	}
	sessionID := ""
	if rec.SessionID > 0 {
		sessionID = strconv.FormatInt(int64(rec.SessionID), 10)
	}
	repl.Set("http.reset_guard.decision", x.verdict)
	repl.Set("http.reset_guard.session_id", sessionID)
	repl.Set("http.reset_guard.principal", firstNonEmpty(rec.UserName, rec.UserID))
	repl.Set("http.reset_guard.reasons", strings.Join(reasons, ","))
	repl.Set("http.reset_guard.event_id", rec.EventID)
	repl.Set("http.reset_guard.request_id", rec.RequestID)
	repl.Set("http.reset_guard.outcome", rec.Outcome)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
