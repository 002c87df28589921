package credential

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
)

// PrincipalLookupConfig configures the backend lookup.
type PrincipalLookupConfig struct {
	// Backend asks the backend who the caller is; its upstream and
	// timeout are the lookup's.
	Backend *superoffice.Client
	// TTL is the cache lifetime; 0 means DefaultPrincipalTTL, negative is
	// refused.
	TTL time.Duration
	// MaxEntries bounds the cache; 0 means DefaultPrincipalMaxEntries.
	MaxEntries int
	// OnCache, when set, is called once per Lookup with whether the
	// cache answered it, for metrics that outlive this lookup (a config
	// reload builds a new one).
	OnCache func(hit bool)
}

// Defaults for PrincipalLookupConfig.
const (
	DefaultPrincipalTTL        = 60 * time.Second
	DefaultPrincipalMaxEntries = 10000
)

// PrincipalLookup asks the backend who the caller is and caches the
// answer per credential.
type PrincipalLookup struct {
	backend *superoffice.Client
	cache   *ttlCache
	flight  singleflight.Group
	onCache func(hit bool)

	hits, misses, backendCalls atomic.Int64
}

// NewPrincipalLookup checks cfg and returns a lookup with an empty cache.
func NewPrincipalLookup(cfg PrincipalLookupConfig) (*PrincipalLookup, error) {
	if cfg.Backend == nil {
		return nil, errors.New("principal lookup: no backend client")
	}
	if cfg.TTL < 0 || cfg.MaxEntries < 0 {
		return nil, errors.New("principal lookup: ttl and max_entries must not be negative")
	}
	cache, err := newTTLCache(cmp.Or(cfg.MaxEntries, DefaultPrincipalMaxEntries), cmp.Or(cfg.TTL, DefaultPrincipalTTL))
	if err != nil {
		return nil, err
	}
	return &PrincipalLookup{backend: cfg.Backend, cache: cache, onCache: cfg.OnCache}, nil
}

// lookupFailed is a lookup that ended before the backend could answer.
func lookupFailed(err error) *refusal.Refusal {
	return refusal.New(http.StatusServiceUnavailable, refusal.PrincipalLookupFailed, refusal.MessageIdentity).Wrap(err)
}

// Lookup returns the caller's principal as the backend's
// User/currentPrincipal names it (superoffice.Client.CurrentPrincipal,
// sent with the caller's credential headers copied from `from`).
//
// Results are cached under key (the caller computes it as a keyed hash
// over all credential headers and the prefix; the cache never sees raw
// credentials) with the TTL and size bound. Concurrent lookups for the
// same key coalesce into one backend call (singleflight); the shared call
// runs with the client's own timeout and is not cancelled when the first
// waiting client goes away (context.WithoutCancel), while each waiter
// still returns early if its own ctx ends. Failures are not cached.
//
// Every error is a *refusal.Refusal: 401 principal_unauthenticated when
// the backend refused the credential, 503 principal_lookup_failed
// otherwise. Error texts never contain credential values.
func (l *PrincipalLookup) Lookup(ctx context.Context, key, prefix string, from http.Header) (*Principal, error) {
	if key == "" {
		// An empty key would make every caller share one cache entry,
		// i.e. one caller's identity.
		return nil, lookupFailed(errors.New("principal lookup: empty cache key"))
	}
	if p, ok := l.cache.get(key); ok {
		l.hits.Add(1)
		if l.onCache != nil {
			l.onCache(true)
		}
		return p, nil
	}
	l.misses.Add(1)
	if l.onCache != nil {
		l.onCache(false)
	}

	// Copy the credential headers now: the shared call may outlive this
	// request, and its header map belongs to the server.
	h := superoffice.CredentialHeaders(from)
	// Values (tracing, logger) of the first caller's ctx are kept; its
	// cancellation is not, or one client hanging up would fail everyone
	// waiting on the same key.
	callCtx := context.WithoutCancel(ctx)
	ch := l.flight.DoChan(key, func() (any, error) {
		// A lookup that missed the cache just as an earlier flight for
		// this key finished finds the answer here rather than asking the
		// backend again.
		if p, ok := l.cache.get(key); ok {
			return p, nil
		}
		l.backendCalls.Add(1)
		c, err := l.backend.CurrentPrincipal(callCtx, prefix, h)
		if err != nil {
			return nil, err
		}
		p := principalFromCarrier(c)
		// Added before the flight ends, so that no later caller can miss
		// both the flight and the cache.
		l.cache.add(key, p)
		return p, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, ownRefusal(res.Err)
		}
		return res.Val.(*Principal), nil
	case <-ctx.Done():
		return nil, lookupFailed(fmt.Errorf("principal lookup: %w", ctx.Err()))
	}
}

// ownRefusal gives each waiter of a shared call its own copy of the
// refusal, since whoever handles a refusal may add to it (headers).
func ownRefusal(err error) error {
	r, ok := refusal.As(err)
	if !ok {
		return lookupFailed(err)
	}
	cp := *r
	return &cp
}

// Stats reports cache hits, misses and the calls passed to the backend
// client (for metrics and tests).
func (l *PrincipalLookup) Stats() (hits, misses, backendCalls int64) {
	return l.hits.Load(), l.misses.Load(), l.backendCalls.Load()
}

// ttlCache is a size-bounded LRU whose entries expire. Expiry is checked on
// read instead of by a cleanup goroutine (golang-lru's expirable cache runs
// one that can never be stopped, which would leak one per config reload).
type ttlCache struct {
	lru *lru.Cache[string, ttlEntry]
	ttl time.Duration
}

type ttlEntry struct {
	p       *Principal
	expires time.Time
}

func newTTLCache(size int, ttl time.Duration) (*ttlCache, error) {
	c, err := lru.New[string, ttlEntry](size)
	if err != nil {
		return nil, fmt.Errorf("principal lookup: cache of size %d: %w", size, err)
	}
	return &ttlCache{lru: c, ttl: ttl}, nil
}

func (c *ttlCache) get(key string) (*Principal, bool) {
	e, ok := c.lru.Get(key)
	if !ok {
		return nil, false
	}
	if time.Now().After(e.expires) {
		c.lru.Remove(key)
		return nil, false
	}
	return e.p, true
}

func (c *ttlCache) add(key string, p *Principal) {
	c.lru.Add(key, ttlEntry{p: p, expires: time.Now().Add(c.ttl)})
}
