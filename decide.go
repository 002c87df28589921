package resetguard

import (
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/open-policy-agent/opa/v1/server"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/policy"
)

// secretQueryWords: a query parameter whose name, lower-cased and without
// '-', '_' and '.', contains one of these is dropped from the policy
// input, because clients put credentials in query strings under many
// names (access_token, so_apptoken, client_secret, X-XSRF-TOKEN, …).
var secretQueryWords = []string{"token", "ticket", "secret", "password", "passwd", "auth", "key", "jwt", "cookie", "session", "xsrf", "credential"}

// isSecretQueryKey reports whether a query parameter may carry a secret.
func isSecretQueryKey(k string) bool {
	norm := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.':
			return -1
		}
		return unicode.ToLower(r)
	}, k)
	for _, w := range secretQueryWords {
		if strings.Contains(norm, w) {
			return true
		}
	}
	return false
}

// decide asks the policy. The engine is taken once, so a bundle activated
// meanwhile does not change this request's decision half-way. A deny, an
// error or a timeout refuses, unless dry_run forwards it.
func (h *Handler) decide(x *exchange) *refusal.Refusal {
	engine := h.policy.Engine()
	if engine == nil {
		return refusal.New(http.StatusServiceUnavailable, refusal.PolicyNotReady, "no access policy is active yet")
	}
	in := h.input(x)
	iv := in.Value()
	evalStart := time.Now()
	dec, err := engine.Eval(x.r.Context(), iv)
	x.decision = &audit.Decision{
		Allow:    err == nil && dec.Allow,
		DryRun:   h.Policy.DryRun,
		Reasons:  dec.Reasons,
		Query:    engine.Query(),
		Revision: engine.Revision(),
		Eval:     time.Since(evalStart),
	}
	metricsFor(x.r.Context()).evalSeconds.Observe(x.decision.Eval.Seconds())
	if h.dlog != nil {
		// Built off the request path, by the logger's goroutine.
		rid, eval := x.requestID, x.decision.Eval
		h.dlog.log(func() *server.Info {
			return decisionInfo(rid, iv, engine.Query(), engine.Revision(), dec, err, eval, evalStart)
		})
	}
	x.verdict = h.verdict(dec, err)
	switch {
	case err != nil && x.r.Context().Err() != nil:
		// The client left while the policy ran: nothing to answer, but
		// the attempt is still recorded.
		x.decision.Reasons = []string{refusal.ClientGone}
		return refusal.New(statusClientClosed, refusal.ClientGone, "the client closed the request").Wrap(err)
	case err != nil:
		h.logger.Error("policy evaluation failed; denying", zap.String("request_id", x.requestID), zap.Error(err))
		x.decision.Reasons = []string{refusal.PolicyError}
		if !h.Policy.DryRun {
			return refusal.New(h.Policy.ErrorStatus, refusal.PolicyError, "the access policy could not decide").Wrap(err)
		}
	case !dec.Allow && !h.Policy.DryRun:
		return denial(dec)
	case dec.Allow:
		// Policy-set headers replace whatever the client sent under the
		// same names, so a client cannot forge them.
		for k, vs := range dec.Headers {
			x.r.Header[k] = vs
		}
	}
	return nil
}

// verdict names the decision for the {http.reset_guard.decision}
// placeholder and the decision-time metric.
func (h *Handler) verdict(dec policy.Decision, err error) string {
	switch {
	case err != nil && h.Policy.DryRun, err == nil && !dec.Allow && h.Policy.DryRun:
		return verdictDryRun
	case err != nil:
		return verdictError
	case dec.Allow:
		return verdictAllow
	default:
		return verdictDeny
	}
}

// denial is the refusal of a policy deny: the policy's status (403 by
// default), reasons and response headers.
func denial(dec policy.Decision) *refusal.Refusal {
	status := dec.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	reasons := dec.Reasons
	if len(reasons) == 0 {
		reasons = []string{refusal.PolicyDenied}
	}
	return &refusal.Refusal{Status: status, Reasons: reasons, Header: dec.Headers,
		Message: "the access policy does not allow this hand-off"}
}

// input is the policy input (resetguard.input/v1) of the exchange. It
// holds no credential value: only the scheme, kind and fingerprint. It is
// returned by value: decide needs it only to build the OPA value, so it
// can stay on the stack.
func (h *Handler) input(x *exchange) policy.Input {
	cred := x.cred
	r := x.r
	headers := make(map[string][]string, len(h.InputHeaders))
	for _, name := range h.InputHeaders {
		if vs := r.Header.Values(name); len(vs) > 0 {
			headers[strings.ToLower(name)] = vs
		}
	}
	query := r.URL.Query()
	for k := range query {
		if isSecretQueryKey(k) {
			delete(query, k)
		}
	}
	return policy.Input{
		Action:    action,
		Route:     string(x.t.Route),
		SessionID: x.sessionID,
		Tenant:    x.t.Tenant,
		Request: policy.Request{
			ID:       x.requestID,
			Method:   r.Method,
			Path:     r.URL.EscapedPath(),
			Host:     r.Host,
			RemoteIP: x.sourceIP,
			Headers:  headers,
			Query:    query,
		},
		Credential: policy.Credential{
			Scheme:      string(cred.Scheme),
			Kind:        string(cred.Kind),
			Fingerprint: x.fingerprint,
			Tenant:      cred.Tenant,
			Username:    cred.Username,
		},
		Principal: policyPrincipal(x.principal),
		Session:   x.session,
		Time:      x.start,
	}
}
