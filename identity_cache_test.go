package resetguard

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestIdentityJWTCache: the config's cache options reach the verifier,
// and every provisioning (each config load or reload) builds a verifier
// with a cache of its own, so no entry survives a change of issuer,
// audiences, algorithms or keys.
func TestIdentityJWTCache(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ttl        caddy.Duration
		maxEntries int
		wantHits   int64 // of tokens A, B, A, B, B
	}{
		{"default: on", 0, 0, 3},
		{"off", durationOff, 0, 0},
		{"one entry", 0, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, sign := jwtIdentity(t)
			cfg.JWT.CacheTTL, cfg.JWT.CacheMaxEntries = tc.ttl, tc.maxEntries
			a, b := sign(nil), sign(map[string]any{"jti": "b"})
			loads := make([]*identity, 2)
			for i := range loads {
				id, err := cfg.provision(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(id.close)
				loads[i] = id
			}
			for _, token := range []string{a, b, a, b, b} {
				if _, err := loads[0].jwt.Verify(context.Background(), token); err != nil {
					t.Fatal(err)
				}
			}
			if hits, verified := loads[0].jwt.CacheStats(); hits != tc.wantHits || verified != 5-tc.wantHits {
				t.Errorf("hits, verified = %d, %d; want %d, %d", hits, verified, tc.wantHits, 5-tc.wantHits)
			}
			if _, err := loads[1].jwt.Verify(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			if hits, verified := loads[1].jwt.CacheStats(); hits != 0 || verified != 1 {
				t.Errorf("the second load: hits, verified = %d, %d; want 0, 1 (a cache of its own)", hits, verified)
			}
		})
	}
}
