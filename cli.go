package resetguard

import (
	"github.com/resetguard/caddy-resetguard/cli"
	"github.com/resetguard/caddy-resetguard/policy"
)

// The reset-guard command reads a handler config through Caddy's module
// registry and this interface; importing cli here also registers the
// command in every binary built with this module (xcaddy --with).
var _ cli.PolicySource = (*Handler)(nil)

// PolicySource is the handler's local policy sources and query, as
// Provision gives them to the policy engine, so that `reset-guard policy
// eval` evaluates what the handler would.
func (h *Handler) PolicySource() policy.Config { return h.Policy.engineConfig() }

// RemoteBundleURL is the bundle service the handler polls, "" when none:
// `reset-guard policy eval` does not contact it and warns that it
// evaluates the local sources only.
func (h *Handler) RemoteBundleURL() string {
	if h.Policy.Remote == nil {
		return ""
	}
	return h.Policy.Remote.URL
}
