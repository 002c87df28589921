package credential

import (
	"crypto"
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Defaults and bounds of the verified-token cache (JWTConfig.CacheTTL and
// CacheMaxEntries).
const (
	// DefaultJWTCacheTTL is the longest a verification is reused: long
	// enough that a bot presenting one token for its life is verified a
	// handful of times, short enough that every decision is remade from
	// scratch often.
	DefaultJWTCacheTTL = 5 * time.Minute
	// MaxJWTCacheTTL is the ceiling of CacheTTL.
	MaxJWTCacheTTL = time.Hour
	// DefaultJWTCacheMaxEntries is the default size bound: a gateway sees
	// a few bots, each with one live token at a time. An entry holds the
	// decoded claims of one token (at most MaxTokenBytes long): typically
	// a KiB, so a full cache is about a MiB; tens of MiB at worst, with
	// every token at the 8 KiB limit.
	DefaultJWTCacheMaxEntries = 1024
)

// tokenKey is the SHA-256 of a token's bytes. The cache holds only this
// hash, never the token, so a heap dump or a debugger shows no bearer
// credential; a token's signature makes the hash impossible to invert.
type tokenKey [sha256.Size]byte

// tokenCache holds the results of successful verifications, as Envoy's
// jwt_authn does, so that a bot presenting the same token on every request
// pays for the signature once.
//
// What a hit may skip, and why that is safe:
//   - Parsing and the signature: the key is a hash of the whole token, so
//     a hit is the very bytes that verified; any other token (another
//     audience, an altered payload) has another key.
//   - Issuer, audiences, algorithm allow-list, required claims: fixed for
//     the life of one JWTVerifier, which owns the cache. A config reload
//     provisions a new verifier with an empty cache, so no entry outlives
//     the settings it was verified under.
//   - The key set: an entry records the key that verified it and the set
//     it was found in. When the set has been replaced (refresh, rotation),
//     the key must still be among the current set's candidates for the
//     token's kid and alg, exactly those the uncached path would try, or
//     the entry is dropped.
//
// What a hit never skips: the time checks (exp, nbf, iat with leeway) and
// the required claims run on every hit with the same code and clock as an
// uncached verification (JWTVerifier.checkClaims), so an entry cannot
// make a token valid at an instant the uncached path would refuse it. A
// hit that fails them, an entry older than the TTL and an entry whose key
// is gone are removed and the token is verified from scratch, so every
// refusal, with its reason, comes from the uncached path. Failures are
// never stored.
//
// Eviction is least-recently-used (hashicorp/golang-lru, already used for
// principals), so the bots that present tokens all the time stay cached
// while one-off tokens age out. Entries are not swept in the background:
// a stale one costs memory only until it is evicted or next looked up.
type tokenCache struct {
	lru *lru.Cache[tokenKey, *tokenEntry]
	ttl time.Duration
}

// tokenEntry is one verified token. Its fields other than keys are
// immutable once stored.
type tokenEntry struct {
	claims map[string]any // never handed out: callers get cloneClaims copies
	std    josejwt.Claims // for re-checking times and audiences on each hit
	kid    string
	alg    jose.SignatureAlgorithm
	key    crypto.PublicKey // the key whose signature verified
	// keys is the key set the key was last found in. It starts as the
	// set of the verification and moves forward when a later set is
	// found to hold the same key, so the membership check runs once per
	// entry and key set rather than once per hit.
	keys     atomic.Pointer[keySet]
	deadline time.Time // the entry is not used after this (stored + TTL)
}

// newTokenCache returns a cache of at most size entries, each used for at
// most ttl.
func newTokenCache(size int, ttl time.Duration) (*tokenCache, error) {
	c, err := lru.New[tokenKey, *tokenEntry](size)
	if err != nil {
		return nil, fmt.Errorf("jwt: token cache of size %d: %w", size, err)
	}
	return &tokenCache{lru: c, ttl: ttl}, nil
}

// tokenHasher hashes a token without copying it to the heap: a
// []byte(token) conversion would allocate the token's length on every
// request, and hash.Hash has no WriteString. Pooled with its buffers, so
// that nothing escapes per call.
type tokenHasher struct {
	h   hash.Hash
	buf [512]byte
	sum [sha256.Size]byte
}

var tokenHashers = sync.Pool{New: func() any { return &tokenHasher{h: sha256.New()} }}

// hashToken is the cache key of token: SHA-256, so that no one can make
// another token collide with a cached one.
func hashToken(token string) tokenKey {
	th := tokenHashers.Get().(*tokenHasher)
	th.h.Reset()
	for s := token; s != ""; {
		n := copy(th.buf[:], s)
		th.h.Write(th.buf[:n])
		s = s[n:]
	}
	k := tokenKey(th.h.Sum(th.sum[:0]))
	tokenHashers.Put(th)
	return k
}

// get returns the verified claims cached under k if the entry may still
// answer for its token at now: not past its deadline, its key still in
// cur, and the token's times and required claims still accepted by v. An
// entry that fails any of these is removed.
func (c *tokenCache) get(v *JWTVerifier, k tokenKey, cur *keySet, now time.Time) (map[string]any, bool) {
	e, ok := c.lru.Get(k)
	if !ok {
		return nil, false
	}
	if now.After(e.deadline) || !e.keyIn(cur) || v.checkClaims(e.std, e.claims, now) != nil {
		c.lru.Remove(k)
		return nil, false
	}
	return e.claims, true
}

// add stores a successful verification made at now with key from ks.
func (c *tokenCache) add(k tokenKey, e *tokenEntry, ks *keySet, now time.Time) {
	e.keys.Store(ks)
	e.deadline = now.Add(c.ttl)
	c.lru.Add(k, e)
}

// keyIn reports whether the entry's key still verifies its token in cur:
// whether it is among the keys the uncached path would try for the
// token's kid and alg (a key withdrawn, replaced under the same kid,
// restricted to another alg, or a kid-less token whose set gained a second
// key all fail). Same set as last time: a pointer comparison.
func (e *tokenEntry) keyIn(cur *keySet) bool {
	if e.keys.Load() == cur {
		return true
	}
	for _, k := range cur.candidates(e.kid, e.alg) {
		if pub, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(e.key) {
			e.keys.Store(cur)
			return true
		}
	}
	return false
}

// cloneClaims deep-copies decoded claims (maps, slices and the scalars
// decodeClaims leaves), so that a caller that edits its claims cannot
// change the cached entry, nor another request's principal. A flat bot
// token costs one map; the copy is a small fraction of what the cache
// saves.
func cloneClaims(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneJSON(v)
	}
	return out
}

func cloneJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return cloneClaims(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = cloneJSON(e)
		}
		return out
	}
	// Strings, json.Number, bools and nil are immutable values.
	return v
}
