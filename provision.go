package resetguard

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/resetguard/caddy-resetguard/audit"
	"github.com/resetguard/caddy-resetguard/credential"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
	"github.com/resetguard/caddy-resetguard/policy"
)

// engineConfig is the policy engine's view of the local policy sources.
func (p *PolicyConfig) engineConfig() policy.Config {
	return policy.Config{
		Paths:   p.Paths,
		Bundles: p.Bundles,
		Query:   p.Query,
		Timeout: time.Duration(p.Timeout),

		AllowNetworkBuiltins: p.AllowNetworkBuiltins,
	}
}

// Provision prepares the policy and the credential settings once, so that
// a request pays only for evaluation.
func (h *Handler) Provision(ctx caddy.Context) error {
	// Validate first, on the config as written: the defaults below would
	// hide a negative value, and nothing may be opened for a config that
	// is refused anyway. Caddy calls Validate again after this.
	if err := h.Validate(); err != nil {
		return err
	}
	h.setDefaults()
	h.logger = ctx.Logger()
	h.sink = audit.NewSink(h.logger.Named("audit"))
	// First: the identity and policy set up below hook into the metrics.
	if err := initMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	// ctx carries the server being provisioned, as requests will.
	sm := h.bindMetrics(ctx)

	h.schemes = h.schemes[:0]
	for _, s := range h.Schemes {
		sc, err := credential.ParseScheme(s)
		if err != nil {
			return fmt.Errorf("reset_guard: schemes: %w", err)
		}
		h.schemes = append(h.schemes, sc)
	}
	key := caddy.NewReplacer().ReplaceKnown(h.FingerprintKey, "")
	h.fingerprint = credential.NewFingerprinter([]byte(key))

	if sl := h.SessionLookup; sl != nil {
		upstream := caddy.NewReplacer().ReplaceKnown(sl.Upstream, "")
		// Validate checked the URL; a non-positive timeout is the
		// client's default (2s).
		c, err := superoffice.NewClient(superoffice.Config{Upstream: upstream, Timeout: max(time.Duration(sl.Timeout), 0)})
		if err != nil {
			return fmt.Errorf("reset_guard: session_lookup: %w", err)
		}
		h.lookup = c
	}
	if err := h.Audit.provision(h); err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	id, err := h.Identity.provision(ctx)
	if err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	h.id = id
	h.credOpts = credential.Options{Schemes: h.schemes, AcceptJWT: id.jwt != nil}
	remote, wait, err := h.Policy.remote()
	if err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	if remote != nil {
		h.remoteShown = redactURL(remote.URL) + " " + remote.Resource
		remote.OnActivate = func(string) { sm.bundleActivations.Inc() }
		remote.OnReject = func(error) { sm.bundleRejections.Inc() }
	}
	pm, err := policy.NewManager(ctx, h.Policy.engineConfig(), remote, wait, h.logger)
	if err != nil {
		return fmt.Errorf("reset_guard: %w", err)
	}
	h.policy = pm
	if dl := h.Policy.DecisionLogs; dl != nil {
		l, masks, err := newDecisionLogger(ctx, dl, audit.NewEventID(), h.Policy.Paths, h.logger)
		if err != nil {
			pm.Stop(context.Background())
			return fmt.Errorf("reset_guard: %w", err)
		}
		h.dlog = l
		h.logger.Info("decision logs on", zap.String("service", redactURL(dl.URL)),
			zap.Bool("policy_mask_rules", masks))
	}
	h.provisioned = time.Now()
	h.counts = new(outcomeCounts)
	registerHandler(h)
	// Cleanup unregisters too; this also covers a handler provisioned
	// outside a Caddy config (tests, embedding), whose Cleanup nobody
	// calls.
	go func() {
		<-ctx.Done()
		unregisterHandler(h)
		h.unbindMetrics()
		h.dlog.stop()
	}()
	h.logger.Info("policy prepared",
		zap.String("query", pm.Query()),
		zap.String("policy_revision", pm.Status().Revision),
		zap.Bool("remote_bundle", remote != nil),
		zap.Bool("dry_run", h.Policy.DryRun))
	return nil
}

// remote turns the remote bundle config into the policy package's.
func (p *PolicyConfig) remote() (*policy.Remote, time.Duration, error) {
	r := p.Remote
	if r == nil {
		return nil, 0, nil
	}
	repl := caddy.NewReplacer()
	out := &policy.Remote{
		URL:       repl.ReplaceKnown(r.URL, ""),
		Resource:  r.Resource,
		MinDelay:  time.Duration(r.MinDelay),
		MaxDelay:  time.Duration(r.MaxDelay),
		KeyID:     r.KeyID,
		Algorithm: r.Algorithm,
		Scope:     r.Scope,
		Headers:   make(map[string]string, len(r.Headers)),
	}
	for k, v := range r.Headers {
		out.Headers[k] = repl.ReplaceKnown(v, "")
	}
	if r.PublicKeyFile != "" {
		pem, err := os.ReadFile(r.PublicKeyFile)
		if err != nil {
			return nil, 0, fmt.Errorf("remote bundle public key: %w", err)
		}
		out.PublicKey = string(pem)
	}
	wait := time.Duration(r.Wait)
	if wait == 0 {
		wait = 5 * time.Second
	}
	return out, wait, nil
}

// Cleanup stops bundle polling and JWKS refreshes of this config.
func (h *Handler) Cleanup() error {
	unregisterHandler(h)
	h.unbindMetrics()
	if h.policy != nil {
		h.policy.Stop(context.Background())
	}
	h.dlog.stop()
	h.id.close()
	if h.fileSinkKey != "" {
		if _, err := fileSinks.Delete(h.fileSinkKey); err != nil {
			return fmt.Errorf("reset_guard: closing the audit file: %w", err)
		}
	}
	return nil
}
