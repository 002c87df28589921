package credential

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// jtClock is a settable clock for a verifier's claim checks and cache.
type jtClock struct{ ns atomic.Int64 }

func newJTClock(t time.Time) *jtClock {
	c := &jtClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *jtClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *jtClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *jtClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// jtFileVerifier is a verifier of the test issuer over a JWKS file
// holding keys, with the clock replaced by clk when it is not nil.
func jtFileVerifier(t testing.TB, clk *jtClock, cfg JWTConfig, keys ...jose.JSONWebKey) *JWTVerifier {
	t.Helper()
	cfg.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(cfg.JWKSFile, jtJWKS(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newJTVerifier(t, cfg)
	if clk != nil {
		v.now = clk.Now
	}
	return v
}

// jtVerifyCounted verifies token and reports whether it took a signature
// verification (rather than a cache hit).
func jtVerifyCounted(v *JWTVerifier, token string) (map[string]any, bool, error) {
	_, before := v.CacheStats()
	claims, err := v.Verify(context.Background(), token)
	_, after := v.CacheStats()
	return claims, after != before, err
}

// jtReason is the refusal reason of err, "" for nil.
func jtReason(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	f, ok := refusal.As(err)
	if !ok {
		t.Fatalf("error %T %v is not a refusal", err, err)
	}
	return f.Reason()
}

func TestJWTCacheServesRepeatedToken(t *testing.T) {
	k := jtKeys()
	v := jtFileVerifier(t, nil, JWTConfig{}, jtPublic(k.rsa1, "rsa-1", ""))
	token := jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	for i := range 10 {
		claims, verified, err := jtVerifyCounted(v, token)
		if err != nil {
			t.Fatalf("Verify %d: %v", i, err)
		}
		if verified != (i == 0) {
			t.Errorf("Verify %d checked a signature: %v, want %v", i, verified, i == 0)
		}
		if claims["sub"] != "bot-1" {
			t.Errorf("Verify %d: sub = %v", i, claims["sub"])
		}
		// Each caller owns its map: an edit must not reach the entry.
		claims["sub"] = "admin"
	}
	if hits, verified := v.CacheStats(); hits != 9 || verified != 1 {
		t.Errorf("hits, verified = %d, %d; want 9, 1", hits, verified)
	}
	// The cache holds the token's SHA-256, never the token.
	keys := v.cache.lru.Keys()
	if len(keys) != 1 || keys[0] != tokenKey(sha256.Sum256([]byte(token))) {
		t.Errorf("cache keys = %x, want the token's SHA-256", keys)
	}
}

func TestJWTCacheDisabled(t *testing.T) {
	k := jtKeys()
	v := jtFileVerifier(t, nil, JWTConfig{CacheTTL: -1}, jtPublic(k.rsa1, "rsa-1", ""))
	token := jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	for range 3 {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatal(err)
		}
	}
	if hits, verified := v.CacheStats(); hits != 0 || verified != 3 {
		t.Errorf("hits, verified = %d, %d; want 0, 3", hits, verified)
	}
}

// jtStep is one Verify at t0+at: the reason it must be refused with (""
// to pass) and whether it must check a signature (false: a cache hit).
type jtStep struct {
	at       time.Duration
	reason   string
	verified bool
}

// TestJWTCacheTimes moves the clock over a cached token's life. Each step
// runs on a caching verifier and on an uncached one with the same clock:
// they must agree at every instant, so a cache entry never lets a token
// through that uncached verification refuses. Leeway is the default 30s,
// the TTL the default 5m.
func TestJWTCacheTimes(t *testing.T) {
	k := jtKeys()
	t0 := time.Now().Truncate(time.Second)
	at := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	token := func(mod func(m map[string]any)) string {
		return jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(func(m map[string]any) {
			m["iat"], m["nbf"], m["exp"] = at(-10*time.Second), at(-10*time.Second), at(2*time.Minute)
			if mod != nil {
				mod(m)
			}
		}), nil)
	}
	for _, tc := range []struct {
		name  string
		token string
		steps []jtStep
	}{
		{"cached until exp plus leeway, refused after", token(nil), []jtStep{
			{0, "", true},
			{time.Minute, "", false},
			{2*time.Minute + 30*time.Second, "", false},
			{2*time.Minute + 31*time.Second, "token_expired", true},
			{2*time.Minute + 32*time.Second, "token_expired", true},
			{time.Minute, "", true}, // the clock stepped back: verified afresh
		}},
		{"clock stepped back before nbf", token(nil), []jtStep{
			{0, "", true},
			{-40 * time.Second, "", false},
			{-41 * time.Second, "token_not_yet_valid", true},
			{0, "", true},
		}},
		{"clock stepped back before iat", token(func(m map[string]any) { delete(m, "nbf") }), []jtStep{
			{0, "", true},
			{-41 * time.Second, "token_issued_in_future", true},
		}},
		{"nbf in the future is never cached early", token(func(m map[string]any) {
			m["iat"], m["nbf"] = at(0), at(2*time.Minute)
		}), []jtStep{
			{0, "token_not_yet_valid", true},
			{time.Minute + 29*time.Second, "token_not_yet_valid", true},
			{time.Minute + 30*time.Second, "", true},
			{time.Minute + 31*time.Second, "", false},
		}},
		{"TTL reached: verified again", token(func(m map[string]any) { m["exp"] = at(time.Hour) }), []jtStep{
			{0, "", true},
			{5 * time.Minute, "", false},
			{5*time.Minute + time.Second, "", true},
			{6 * time.Minute, "", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newJTClock(t0)
			jwk := jtPublic(k.rsa1, "rsa-1", "")
			cached := jtFileVerifier(t, clk, JWTConfig{}, jwk)
			uncached := jtFileVerifier(t, clk, JWTConfig{CacheTTL: -1}, jwk)
			for i, s := range tc.steps {
				clk.Set(t0.Add(s.at))
				_, verified, err := jtVerifyCounted(cached, tc.token)
				if got := jtReason(t, err); got != s.reason {
					t.Errorf("step %d (t0%+v): reason %q, want %q", i, s.at, got, s.reason)
				}
				if verified != s.verified {
					t.Errorf("step %d (t0%+v): checked a signature: %v, want %v", i, s.at, verified, s.verified)
				}
				_, err = uncached.Verify(context.Background(), tc.token)
				if got := jtReason(t, err); got != s.reason {
					t.Errorf("step %d (t0%+v): uncached reason %q, want %q", i, s.at, got, s.reason)
				}
			}
		})
	}
}

// TestJWTCacheKeyRotation caches a token, rotates the issuer's key set
// and refreshes it (an unknown kid triggers the refresh): the entry must
// answer only while the key that verified it is still one the uncached
// path would use.
func TestJWTCacheKeyRotation(t *testing.T) {
	k := jtKeys()
	rsa1, rsa2, ec1 := jtPublic(k.rsa1, "rsa-1", ""), jtPublic(k.rsa2, "rsa-2", ""), jtPublic(k.ec1, "ec-1", "")
	for _, tc := range []struct {
		name          string
		before, after []jose.JSONWebKey
		kid           string
		reason        string // "" when the token must still pass
	}{
		{"signing key removed", []jose.JSONWebKey{rsa1, rsa2}, []jose.JSONWebKey{rsa2}, "rsa-1", "unknown_kid"},
		{"kid reassigned to another key", []jose.JSONWebKey{rsa1}, []jose.JSONWebKey{jtPublic(k.rsa2, "rsa-1", "")}, "rsa-1", "bad_signature"},
		{"key pinned to another alg", []jose.JSONWebKey{rsa1}, []jose.JSONWebKey{jtPublic(k.rsa1, "rsa-1", "RS512")}, "rsa-1", "unknown_kid"},
		{"kid-less token, set gains a key", []jose.JSONWebKey{rsa1}, []jose.JSONWebKey{rsa1, rsa2}, "", "unknown_kid"},
		{"signing key kept", []jose.JSONWebKey{rsa1, rsa2}, []jose.JSONWebKey{ec1, rsa1}, "rsa-1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newJTServer(t, jtJWKS(t, tc.before...))
			v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})
			token := jtSign(t, jose.RS256, k.rsa1, tc.kid, jtClaims(nil), nil)
			if _, err := v.Verify(context.Background(), token); err != nil {
				t.Fatalf("before rotation: %v", err)
			}
			if _, verified, err := jtVerifyCounted(v, token); err != nil || verified {
				t.Fatalf("before rotation, again: err %v, checked a signature: %v; want a cache hit", err, verified)
			}

			srv.set(jtJWKS(t, tc.after...))
			trigger := jtSign(t, jose.RS256, k.rsaOther, "rotate-now", jtClaims(nil), nil)
			_, err := v.Verify(context.Background(), trigger)
			jtCheckRefusal(t, err, "unknown_kid", trigger)
			if n := srv.hits.Load(); n != 2 {
				t.Fatalf("JWKS fetches = %d, want 2 (start, refresh)", n)
			}

			// Twice: a refusal is never cached, and a kept key is
			// re-validated once, then served by pointer comparison.
			for i, wantVerified := range []bool{tc.reason != "", tc.reason != ""} {
				_, verified, err := jtVerifyCounted(v, token)
				if tc.reason == "" && err != nil {
					t.Fatalf("after rotation %d: %v", i, err)
				}
				if tc.reason != "" {
					jtCheckRefusal(t, err, tc.reason, token)
				}
				if verified != wantVerified {
					t.Errorf("after rotation %d: checked a signature: %v, want %v", i, verified, wantVerified)
				}
			}
		})
	}
}

// TestJWTCacheNeverStoresFailures presents each failing token three
// times: it is refused each time with the same reason, after a signature
// check each time, and nothing is cached.
func TestJWTCacheNeverStoresFailures(t *testing.T) {
	k := jtKeys()
	v := jtFileVerifier(t, nil, JWTConfig{RequiredClaims: []string{"sub"}}, jtPublic(k.rsa1, "rsa-1", ""), jtPublic(k.ec1, "ec-1", ""))
	rs := func(mod func(map[string]any)) string {
		return jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(mod), nil)
	}
	parts := strings.Split(rs(nil), ".")
	for _, tc := range []jtCase{
		{"payload altered after signing", parts[0] + "." + jtB64JSON(t, jtClaims(func(m map[string]any) { m["sub"] = "admin" })) + "." + parts[2], "bad_signature"},
		{"another key with our kid", jtSign(t, jose.RS256, k.rsaOther, "rsa-1", jtClaims(nil), nil), "bad_signature"},
		{"unknown kid", jtSign(t, jose.RS256, k.rsa1, "rsa-9", jtClaims(nil), nil), "unknown_kid"},
		{"expired", rs(func(m map[string]any) { m["exp"] = time.Now().Add(-time.Hour).Unix() }), "token_expired"},
		{"not yet valid", rs(func(m map[string]any) { m["nbf"] = time.Now().Add(time.Hour).Unix() }), "token_not_yet_valid"},
		{"wrong issuer", rs(func(m map[string]any) { m["iss"] = "https://evil.example" }), "wrong_issuer"},
		{"wrong audience", rs(func(m map[string]any) { m["aud"] = "other-app" }), "wrong_audience"},
		{"missing required claim", rs(func(m map[string]any) { delete(m, "sub") }), "missing_claim"},
		{"alg none", jtB64(`{"alg":"none","kid":"rsa-1"}`) + "." + parts[1] + ".", "alg_not_allowed"},
		{"malformed", "a.b.c", "token_malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 3 {
				claims, verified, err := jtVerifyCounted(v, tc.token)
				if claims != nil {
					t.Errorf("try %d: claims returned with the refusal", i)
				}
				jtCheckRefusal(t, err, tc.reason, tc.token)
				if !verified {
					t.Errorf("try %d answered without verification", i)
				}
			}
		})
	}
	if n := v.cache.lru.Len(); n != 0 {
		t.Errorf("%d entries cached from failing tokens", n)
	}
	if hits, _ := v.CacheStats(); hits != 0 {
		t.Errorf("%d cache hits for failing tokens", hits)
	}
}

// TestJWTCacheScope: an entry answers for its exact token in its own
// verifier only, so a token for another audience, or spliced from a
// cached one, never benefits from it.
func TestJWTCacheScope(t *testing.T) {
	k := jtKeys()
	jwk := jtPublic(k.rsa1, "rsa-1", "")
	ours := jtFileVerifier(t, nil, JWTConfig{}, jwk)
	theirs := jtFileVerifier(t, nil, JWTConfig{Audiences: []string{"other-app"}}, jwk)
	ourToken := jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	theirToken := jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(func(m map[string]any) { m["aud"] = "other-app" }), nil)
	op, tp := strings.Split(ourToken, "."), strings.Split(theirToken, ".")
	// Each verifier holds its own token, the second time from the cache.
	for range 2 {
		if _, err := ours.Verify(context.Background(), ourToken); err != nil {
			t.Fatal(err)
		}
		if _, err := theirs.Verify(context.Background(), theirToken); err != nil {
			t.Fatal(err)
		}
	}
	if oh, _ := ours.CacheStats(); oh != 1 {
		t.Fatalf("our verifier: %d hits, want 1", oh)
	}
	for _, tc := range []struct {
		name  string
		v     *JWTVerifier
		token string
		want  string
	}{
		{"their token at our verifier, ours cached", ours, theirToken, "wrong_audience"},
		{"our token at their verifier, theirs cached", theirs, ourToken, "wrong_audience"},
		{"their payload under our signature", ours, op[0] + "." + tp[1] + "." + op[2], "bad_signature"},
		{"our payload under their signature", theirs, tp[0] + "." + op[1] + "." + tp[2], "bad_signature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, verified, err := jtVerifyCounted(tc.v, tc.token)
			jtCheckRefusal(t, err, tc.want, tc.token)
			if !verified {
				t.Error("answered without verification")
			}
		})
	}
}

// TestJWTCacheSizeBound fills a cache of three with five tokens: it never
// holds more than three, the least recently used goes first, and an
// evicted token is verified again (and passes).
func TestJWTCacheSizeBound(t *testing.T) {
	k := jtKeys()
	v := jtFileVerifier(t, nil, JWTConfig{CacheMaxEntries: 3}, jtPublic(k.ec1, "ec-1", ""))
	tokens := make([]string, 5)
	for i := range tokens {
		tokens[i] = jtSign(t, jose.ES256, k.ec1, "ec-1", jtClaims(func(m map[string]any) { m["sub"] = "bot-" + string(rune('a'+i)) }), nil)
		if _, err := v.Verify(context.Background(), tokens[i]); err != nil {
			t.Fatal(err)
		}
		if n := v.cache.lru.Len(); n > 3 {
			t.Fatalf("after %d tokens the cache holds %d entries, bound 3", i+1, n)
		}
	}
	for _, tc := range []struct {
		token    int
		verified bool
	}{{4, false}, {2, false}, {0, true}, {1, true}, {2, false}} {
		claims, verified, err := jtVerifyCounted(v, tokens[tc.token])
		if err != nil || claims["sub"] != "bot-"+string(rune('a'+tc.token)) {
			t.Fatalf("token %d: %v, sub %v", tc.token, err, claims["sub"])
		}
		if verified != tc.verified {
			t.Errorf("token %d checked a signature: %v, want %v", tc.token, verified, tc.verified)
		}
	}
	if n := v.cache.lru.Len(); n != 3 {
		t.Errorf("cache holds %d entries, want 3", n)
	}
}
