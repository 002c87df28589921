package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// engines shares compiled local policies between Caddy configs: a config
// reload provisions the new handlers before the old ones are cleaned up,
// so an unchanged policy is found here and not compiled again.
var engines = caddy.NewUsagePool()

type pooledEngine struct{ *Engine }

// Destruct has nothing to free: an Engine holds only memory.
func (pooledEngine) Destruct() error { return nil }

var _ caddy.Destructor = pooledEngine{}

// shared returns the engine for cfg's local sources, compiling it only
// when no live config holds one built from the same query, timeout and
// source contents. release gives the caller's use back.
func shared(ctx context.Context, cfg Config) (e *Engine, release func(), err error) {
	src, err := localSources(cfg)
	if err != nil {
		return nil, nil, err
	}
	key, err := sharedKey(cfg, src)
	if err != nil {
		return nil, nil, err
	}
	v, _, err := engines.LoadOrNew(key, func() (caddy.Destructor, error) {
		e, err := build(ctx, cfg, src, "", nil)
		if err != nil {
			return nil, err
		}
		return pooledEngine{e}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return v.(pooledEngine).Engine, func() { _, _ = engines.Delete(key) }, nil
}

// sharedKey names a compiled policy by everything it was built from.
// Bundles are hashed by content: a manifest revision alone may stay the
// same across edits.
func sharedKey(cfg Config, src *sources) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "query=%s\ntimeout=%d\nnetwork=%t\nfiles=%s\n", cfg.Query, cfg.Timeout, cfg.AllowNetworkBuiltins, src.hash)
	for _, path := range sortedKeys(src.bundles) {
		fmt.Fprintf(h, "bundle=%s\n", path)
		if err := bundleDigest(h, src.bundles[path]); err != nil {
			return "", fmt.Errorf("policy: hashing bundle %s: %w", path, err)
		}
	}
	return "policy:" + hex.EncodeToString(h.Sum(nil)), nil
}
