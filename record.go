package resetguard

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// emit writes the record once, and publishes the outcome as placeholders
// before any response leaves, so that deferred header operations, error
// routes and access logs see them.
func (h *Handler) emit(x *exchange, outcome, reason string) {
	if x.audited {
		return
	}
	x.audited = true
	x.rec.Allowed = x.rec.Upstream != nil
	x.rec.Outcome = outcome
	x.rec.Reason = reason
	x.rec.Duration = time.Since(x.start)
	h.writeRecord(x.rec)
	typ := "denied"
	if x.rec.Allowed {
		typ = "allowed"
	}
	scheme := x.rec.CredScheme
	if scheme == "" {
		scheme = "none"
	}
	guardMetrics.requests.WithLabelValues(x.rec.Route, typ, outcome, scheme).Inc()
	h.counts.add(typ, outcome)
	h.setPlaceholders(x)
}

// setPlaceholders sets {http.reset_guard.*} on the request's replacer.
// None of them can carry a credential: the principal is a user name,
// subject or associate id, never a token.
func (h *Handler) setPlaceholders(x *exchange) {
	repl, ok := x.r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return
	}
	var reasons []string
	if d := x.rec.Decision; d != nil && len(d.Reasons) > 0 {
		reasons = d.Reasons
	} else if x.rec.Reason != "" {
		reasons = []string{x.rec.Reason}
	}
	sessionID := ""
	if x.rec.SessionID > 0 {
		sessionID = strconv.FormatInt(int64(x.rec.SessionID), 10)
	}
	repl.Set("http.reset_guard.decision", x.decision)
	repl.Set("http.reset_guard.session_id", sessionID)
	repl.Set("http.reset_guard.principal", firstNonEmpty(x.rec.UserName, x.rec.UserID))
	repl.Set("http.reset_guard.reasons", strings.Join(reasons, ","))
	repl.Set("http.reset_guard.event_id", x.rec.EventID)
	repl.Set("http.reset_guard.request_id", x.rec.RequestID)
	repl.Set("http.reset_guard.outcome", x.rec.Outcome)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
