package resetguard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(AdminStatus{})
}

// liveHandlers is the process-wide registry of provisioned reset_guard
// handlers, for the admin status route and the policy revision gauge.
// During a config reload the old and the new config's handlers are both
// listed until the old config is cleaned up.
var liveHandlers = struct {
	sync.Mutex
	m    map[*Handler]struct{}
	next uint64
}{m: map[*Handler]struct{}{}}

func registerHandler(h *Handler) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	liveHandlers.next++
	h.instance = liveHandlers.next
	liveHandlers.m[h] = struct{}{}
}

func unregisterHandler(h *Handler) {
	liveHandlers.Lock()
	defer liveHandlers.Unlock()
	delete(liveHandlers.m, h)
}

// handlersSnapshot lists the live handlers in provisioning order.
func handlersSnapshot() []*Handler {
	liveHandlers.Lock()
	out := make([]*Handler, 0, len(liveHandlers.m))
	for h := range liveHandlers.m {
		out = append(out, h)
	}
	liveHandlers.Unlock()
	slices.SortFunc(out, func(a, b *Handler) int {
		switch {
		case a.instance < b.instance:
			return -1
		case a.instance > b.instance:
			return 1
		}
		return 0
	})
	return out
}

// outcomeCounts counts one handler's guarded requests by event type
// (allowed, denied) and outcome (success, failure, unknown).
type outcomeCounts struct {
	allowedSuccess, allowedFailure, allowedUnknown atomic.Int64
	deniedFailure, deniedOther                     atomic.Int64
}

func (c *outcomeCounts) add(typ, outcome string) {
	if c == nil {
		return // a handler used without Provision, in unit tests
	}
	switch {
	case typ == "allowed" && outcome == "success":
		c.allowedSuccess.Add(1)
	case typ == "allowed" && outcome == "failure":
		c.allowedFailure.Add(1)
	case typ == "allowed":
		c.allowedUnknown.Add(1)
	case outcome == "failure":
		c.deniedFailure.Add(1)
	default:
		c.deniedOther.Add(1)
	}
}

// AdminStatus is the admin API module admin.api.reset_guard. It serves
// GET /reset_guard/status: for each live reset_guard handler, the active
// policy revision, the bundle history, the audit sinks' health and the
// request counts, so that an operator can check a gateway without
// reading its logs.
type AdminStatus struct{}

// CaddyModule returns the Caddy module information.
func (AdminStatus) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.reset_guard",
		New: func() caddy.Module { return AdminStatus{} },
	}
}

// Routes returns the status route.
func (a AdminStatus) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: "/reset_guard/status",
		Handler: caddy.AdminHandlerFunc(a.serveStatus),
	}}
}

// Status is the body of GET /reset_guard/status.
type Status struct {
	Handlers []HandlerStatus `json:"handlers"`
}

// HandlerStatus describes one live handler.
type HandlerStatus struct {
	Instance      uint64         `json:"instance"`
	Name          string         `json:"name,omitempty"`
	ProvisionedAt time.Time      `json:"provisioned_at"`
	Policy        PolicyStatus   `json:"policy"`
	Audit         AuditStatus    `json:"audit"`
	Requests      RequestsStatus `json:"requests"`
}

// PolicyStatus is the policy part of HandlerStatus.
type PolicyStatus struct {
	Query    string `json:"query"`
	Revision string `json:"revision"`
	Ready    bool   `json:"ready"`
	DryRun   bool   `json:"dry_run"`
	// Remote is the bundle service's URL and resource, when polled.
	Remote string        `json:"remote,omitempty"`
	Bundle *BundleStatus `json:"bundle,omitempty"`
}

// BundleStatus is the remote bundle history.
type BundleStatus struct {
	Activations    int64      `json:"activations"`
	Rejections     int64      `json:"rejections"`
	LastActivation *time.Time `json:"last_activation,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
}

// AuditStatus is the audit sinks' health.
type AuditStatus struct {
	Logger string           `json:"logger"`
	File   *AuditFileStatus `json:"file,omitempty"`
}

// AuditFileStatus is the durable file sink's health. While it is not
// healthy, resets are refused with 503.
type AuditFileStatus struct {
	Path    string `json:"path"`
	Healthy bool   `json:"healthy"`
	// Error says why the file is unhealthy; empty while it is healthy.
	Error string `json:"error,omitempty"`
	// LastError is the last failure since open, kept after recovery.
	LastError string `json:"last_error,omitempty"`
	// Seq is the chain's head: the last record written.
	Seq int64 `json:"seq"`
	// TornCuts and TornBytes count the torn final lines cut at open
	// (each saved beside the file as <path>.torn-<time>).
	TornCuts  int64 `json:"torn_cuts"`
	TornBytes int64 `json:"torn_bytes"`
}

// RequestsStatus counts a handler's guarded requests since it was
// provisioned, by event type and outcome.
type RequestsStatus struct {
	Allowed map[string]int64 `json:"allowed"`
	Denied  map[string]int64 `json:"denied"`
}

func (AdminStatus) serveStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	st := Status{Handlers: []HandlerStatus{}}
	for _, h := range handlersSnapshot() {
		st.Handlers = append(st.Handlers, h.status())
	}
	body, err := json.Marshal(st)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: fmt.Errorf("encoding reset_guard status: %w", err)}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(append(body, '\n'))
	return err
}

// status reports h. It holds no secret: no key, header value or token.
func (h *Handler) status() HandlerStatus {
	ps := h.policy.Status()
	engine := h.policy.Engine()
	hs := HandlerStatus{
		Instance:      h.instance,
		Name:          h.Name,
		ProvisionedAt: h.provisioned.UTC(),
		Policy: PolicyStatus{
			Query:    h.policy.Query(),
			Revision: ps.Revision,
			Ready:    engine != nil,
			DryRun:   h.Policy.DryRun,
		},
		Audit: AuditStatus{Logger: "http.handlers.reset_guard.audit"},
		Requests: RequestsStatus{
			Allowed: map[string]int64{
				"success": h.counts.allowedSuccess.Load(),
				"failure": h.counts.allowedFailure.Load(),
				"unknown": h.counts.allowedUnknown.Load(),
			},
			Denied: map[string]int64{"failure": h.counts.deniedFailure.Load()},
		},
	}
	if n := h.counts.deniedOther.Load(); n > 0 {
		hs.Requests.Denied["other"] = n
	}
	if h.Policy.Remote != nil {
		hs.Policy.Remote = h.remoteShown
		b := &BundleStatus{Activations: ps.Activations, Rejections: ps.Failures, LastError: ps.LastError}
		if !ps.LastSuccess.IsZero() {
			t := ps.LastSuccess.UTC()
			b.LastActivation = &t
		}
		hs.Policy.Bundle = b
	}
	if h.fileSink != nil {
		// Stats is a published snapshot: a writer stuck on a frozen disk
		// cannot hold the status route.
		st := h.fileSink.Stats()
		fs := &AuditFileStatus{Path: h.fileSinkKey, Healthy: st.Healthy, LastError: st.LastError,
			Seq: st.Seq, TornCuts: st.TornCuts, TornBytes: st.TornBytes}
		if !st.Healthy {
			fs.Error = st.LastError
		}
		hs.Audit.File = fs
	}
	return hs
}

// redactURL drops a URL's user info and query, which may carry a bundle
// service credential.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Interface guards.
var (
	_ caddy.Module      = AdminStatus{}
	_ caddy.AdminRouter = AdminStatus{}
)
