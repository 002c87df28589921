package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
	"go.uber.org/zap"
)

// Remote configures a bundle service polled with OPA's own bundle
// protocol (ETag, long polling where the server offers it).
type Remote struct {
	// URL is the service's base URL, e.g. https://bundles.example.com.
	URL string
	// Resource is the bundle's path on the service.
	Resource string
	// MinDelay and MaxDelay bound the polling interval (whole seconds,
	// at least one).
	MinDelay, MaxDelay time.Duration
	// Headers are sent with every download (e.g. an Authorization for
	// the bundle service).
	Headers map[string]string
	// PublicKey, when set, is the PEM public key (or HMAC secret) that
	// signed bundles must verify against; unsigned or badly signed
	// bundles are rejected.
	PublicKey string
	// KeyID names the key in the bundle signature. Default "resetguard".
	KeyID string
	// Algorithm of the signature. Default RS256.
	Algorithm string
	// Scope the signature must carry, if any.
	Scope string
	// OnActivate and OnReject, when set, are told of each activated and
	// each rejected bundle (for metrics).
	OnActivate func(revision string)
	OnReject   func(err error)
}

// Status reports what a Manager has done.
type Status struct {
	Revision    string
	Activations int64
	Failures    int64
	LastError   string
	LastSuccess time.Time
}

// Manager owns the active Engine. Local sources are compiled once; a
// remote bundle is polled and each new revision is compiled into a new
// Engine that replaces the old one atomically, so requests in flight
// finish on the engine they started with. A bundle that fails to
// download, verify or compile leaves the previous engine active.
type Manager struct {
	cfg    Config
	src    *sources
	remote *Remote
	log    *zap.Logger

	cur         atomic.Pointer[Engine]
	activations atomic.Int64
	failures    atomic.Int64

	mu          sync.Mutex
	lastErr     string
	lastSuccess time.Time
	firstUpdate chan struct{}
	firstOnce   sync.Once

	// lastBundle is the digest of the last remote bundle compiled
	// (activated or rejected), so that a bundle service without ETags,
	// which sends the same bundle on every poll, does not have it
	// recompiled and re-activated (or re-rejected) each time.
	lastBundle string

	dl      *download.Downloader
	started bool
	// release gives back a shared local engine (see shared).
	release func()
}

// remoteBundleName is the bundle's name in the compiled policy.
const remoteBundleName = "remote"

// printLoggerName is the name, below the handler's logger, of the logger
// that receives the policy's print() output at debug level.
const printLoggerName = "policy"

// NewManager prepares the local sources and, with a remote bundle, starts
// polling it. With only local sources a compile error is returned; with a
// remote bundle the Manager has no engine until the first bundle
// activates (Engine returns nil), waiting up to initialWait for it.
func NewManager(ctx context.Context, cfg Config, remote *Remote, initialWait time.Duration, log *zap.Logger) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	if remote == nil {
		e, release, err := shared(ctx, cfg)
		if err != nil {
			return nil, err
		}
		m := &Manager{cfg: cfg, log: log, release: release}
		m.activate(e)
		return m, nil
	}
	src, err := loadSources(cfg)
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, src: src, remote: remote, log: log, firstUpdate: make(chan struct{})}
	if err := m.startDownloader(); err != nil {
		return nil, err
	}
	if initialWait > 0 {
		select {
		case <-m.firstUpdate:
		case <-time.After(initialWait):
			log.Warn("no policy bundle yet; guarded resets are refused until one activates",
				zap.String("url", remote.URL), zap.String("resource", remote.Resource))
		case <-ctx.Done():
		}
	}
	return m, nil
}

func (m *Manager) startDownloader() error {
	r := m.remote
	if r.URL == "" || r.Resource == "" {
		return errors.New("policy: remote bundle needs a url and a resource")
	}
	restCfg := fmt.Sprintf(`{"name": "resetguard", "url": %q, "headers": %s}`, r.URL, headersJSON(r.Headers))
	client, err := rest.New([]byte(restCfg), map[string]*keys.Config{}, rest.Logger(logging.NewNoOpLogger()))
	if err != nil {
		return fmt.Errorf("policy: remote bundle client: %w", err)
	}
	minS, maxS := seconds(r.MinDelay, 10), seconds(r.MaxDelay, 60)
	if maxS < minS {
		maxS = minS
	}
	dcfg := download.Config{Polling: download.PollingConfig{MinDelaySeconds: &minS, MaxDelaySeconds: &maxS}}
	if err := dcfg.ValidateAndInjectDefaults(); err != nil {
		return fmt.Errorf("policy: remote bundle polling: %w", err)
	}
	m.dl = download.New(dcfg, client, r.Resource).
		WithCallback(m.onUpdate).
		WithBundleName(remoteBundleName)
	if r.PublicKey != "" {
		kid := r.KeyID
		if kid == "" {
			kid = "resetguard"
		}
		kc := &keys.Config{Key: r.PublicKey, Algorithm: r.Algorithm, Scope: r.Scope}
		if kc.Algorithm == "" {
			kc.Algorithm = "RS256"
		}
		if !keys.IsSupportedAlgorithm(kc.Algorithm) {
			return fmt.Errorf("policy: remote bundle: unsupported signature algorithm %q", kc.Algorithm)
		}
		m.dl = m.dl.WithBundleVerificationConfig(bundle.NewVerificationConfig(map[string]*bundle.KeyConfig{kid: kc}, kid, r.Scope, nil))
	}
	m.dl.Start(context.Background())
	m.started = true
	return nil
}

func headersJSON(h map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for k, v := range h {
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "%q:%q", k, v)
	}
	b.WriteByte('}')
	return b.String()
}

func seconds(d time.Duration, def int64) int64 {
	if d <= 0 {
		return def
	}
	s := int64(d / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// onUpdate is the downloader's callback: compile and swap, or keep the
// old engine and record why not.
func (m *Manager) onUpdate(ctx context.Context, u download.Update) error {
	defer m.firstOnce.Do(func() { close(m.firstUpdate) })
	if u.Error != nil {
		m.fail(fmt.Errorf("downloading bundle: %w", u.Error))
		return nil
	}
	if u.Bundle == nil {
		return nil // not modified
	}
	digest := remoteDigest(u.Bundle)
	if digest != "" && digest == m.lastBundle {
		m.log.Debug("policy bundle unchanged; not recompiled", zap.String("etag", u.ETag))
		return nil
	}
	m.lastBundle = digest
	e, err := build(ctx, m.cfg, m.src, remoteBundleName, u.Bundle)
	if err != nil {
		m.fail(err)
		return nil
	}
	m.activate(e)
	if m.remote.OnActivate != nil {
		m.remote.OnActivate(e.Revision())
	}
	m.log.Info("policy bundle activated", zap.String("policy_revision", e.Revision()), zap.String("etag", u.ETag))
	return nil
}

// activate makes e the active engine, its print() output routed to the
// manager's logger (a shared engine gets this config's logger, not the
// one of the config that compiled it).
func (m *Manager) activate(e *Engine) {
	e = e.WithPrintHook(newLogPrinter(m.log.Named(printLoggerName), e.Revision()))
	m.cur.Store(e)
	m.activations.Add(1)
	m.mu.Lock()
	m.lastSuccess = time.Now()
	m.mu.Unlock()
}

// remoteDigest names a downloaded bundle by content; "" if it cannot be
// hashed, which never matches, so the bundle is compiled.
func remoteDigest(b *bundle.Bundle) string {
	h := sha256.New()
	if err := bundleDigest(h, b); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (m *Manager) fail(err error) {
	m.failures.Add(1)
	if m.remote.OnReject != nil {
		m.remote.OnReject(err)
	}
	m.mu.Lock()
	m.lastErr = err.Error()
	m.mu.Unlock()
	rev := ""
	if e := m.cur.Load(); e != nil {
		rev = e.Revision()
	}
	m.log.Error("policy bundle rejected; the previous policy stays active",
		zap.String("active_revision", rev), zap.Error(err))
}

// Engine returns the active engine, or nil when none has activated yet.
func (m *Manager) Engine() *Engine { return m.cur.Load() }

// Query is the decision query.
func (m *Manager) Query() string { return m.cfg.Query }

// Status reports the active revision and the activation history.
func (m *Manager) Status() Status {
	s := Status{Activations: m.activations.Load(), Failures: m.failures.Load()}
	if e := m.cur.Load(); e != nil {
		s.Revision = e.Revision()
	}
	m.mu.Lock()
	s.LastError, s.LastSuccess = m.lastErr, m.lastSuccess
	m.mu.Unlock()
	return s
}

// Stop ends polling and gives back a shared engine. In-flight
// evaluations are unaffected.
func (m *Manager) Stop(ctx context.Context) {
	if m.started {
		m.dl.Stop(ctx)
		m.started = false
	}
	if m.release != nil {
		m.release()
		m.release = nil
	}
}
