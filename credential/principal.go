package credential

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"
)

// Principal is who is calling, as the policy sees it (input.principal).
//
// A Principal returned by PrincipalLookup.Lookup is shared by every caller
// that hits the same cache entry: treat it, its slices and its map as
// read-only.
type Principal struct {
	Source         string         // "jwt", "backend" or "none"
	Subject        string         // JWT subject, or the backend's login name (SoPrincipalCarrier.Associate)
	AssociateID    int64          // 0 when unknown
	UserType       string         // SoPrincipalCarrier.UserType: Unknown, InternalAssociate, ResourceAssociate, ExternalAssociate, AnonymousAssociate, SystemAssociate
	RoleName       string         // SoPrincipalCarrier.RoleName
	UserName       string         // SoPrincipalCarrier.UserName
	Tenant         string         // DatabaseContextIdentifier, or the JWT tenant claim
	Licenses       []string       // SoPrincipalCarrier.Licenses, as names
	FunctionRights []string       // SoPrincipalCarrier.FunctionRights
	Claims         map[string]any // verified JWT claims; nil for backend principals
}

// Principal sources.
const (
	PrincipalSourceJWT     = "jwt"
	PrincipalSourceBackend = "backend"
	PrincipalSourceNone    = "none"
)

// userTypes are SuperOffice's UserType names in enum order, so that a
// carrier serialised with numeric enums maps to the same names policies
// are written against.
var userTypes = [...]string{
	"Unknown", "InternalAssociate", "ResourceAssociate",
	"ExternalAssociate", "AnonymousAssociate", "SystemAssociate",
}

// PrincipalFromClaims maps verified JWT claims: subject from subjectClaim
// (default "sub"), associate id from associateIDClaim (string or number;
// SuperOffice sends strings like "5"; unparseable → 0), tenant from
// tenantClaim; Claims is the whole map; Source "jwt".
//
// An empty associateIDClaim or tenantClaim leaves that field empty. The
// tenant is spelt as SuperOffice does ("cust12345" → "Cust12345") so that
// policies compare one form whichever way the principal was found.
func PrincipalFromClaims(claims map[string]any, subjectClaim, associateIDClaim, tenantClaim string) *Principal {
	if subjectClaim == "" {
		subjectClaim = "sub"
	}
	p := &Principal{Source: PrincipalSourceJWT, Claims: claims}
	p.Subject = claimString(claims, subjectClaim)
	if associateIDClaim != "" {
		p.AssociateID = claimInt(claims[associateIDClaim])
	}
	if tenantClaim != "" {
		p.Tenant = canonicalTenant(claimString(claims, tenantClaim))
	}
	return p
}

// claimString returns a string claim; numbers are formatted, since some
// issuers send numeric subjects. Anything else is "".
func claimString(claims map[string]any, name string) string {
	switch v := claims[name].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	}
	return ""
}

// claimInt reads an integer claim that may be a string ("5"), a JSON
// number (float64 or json.Number) or a Go integer; anything that is not a
// whole number in int64 range is 0 ("unknown"), never a truncated guess.
func claimInt(v any) int64 {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0
		}
		return n
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, err := x.Float64()
		if err != nil {
			return 0
		}
		return floatInt(f)
	case float64:
		return floatInt(x)
	case float32:
		return floatInt(float64(x))
	case int:
		return int64(x)
	case int32:
		return int64(x)
	case int64:
		return x
	}
	return 0
}

func floatInt(f float64) int64 {
	// 2^63 is exactly representable; anything at or above it overflows.
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0
	}
	return int64(f)
}

// PrincipalLookupConfig configures the backend lookup.
type PrincipalLookupConfig struct {
	Upstream   string        // backend base URL (http/https, no path)
	Timeout    time.Duration // one lookup; default 2s
	TTL        time.Duration // cache lifetime; default 60s (0 means default; negative is refused)
	MaxEntries int           // cache bound; default 10000
	// Client sends the lookups; default: an http.Client that does not
	// follow redirects. A supplied client is copied and made not to follow
	// redirects either, because a redirect would replay the caller's
	// credential headers to wherever the backend points.
	Client *http.Client
	// OnCache, when set, is called once per Lookup with whether the
	// cache answered it, for metrics that outlive this lookup (a config
	// reload builds a new one).
	OnCache func(hit bool)
}

// Defaults for PrincipalLookupConfig.
const (
	DefaultPrincipalTimeout    = 2 * time.Second
	DefaultPrincipalTTL        = 60 * time.Second
	DefaultPrincipalMaxEntries = 10000
)

// maxPrincipalBody bounds the carrier read from the backend: a real one is
// a few KiB, and the limit keeps a misbehaving backend from making the
// gateway buffer without bound.
const maxPrincipalBody = 1 << 20

// currentPrincipalPath is appended to the upstream and the caller's prefix.
const currentPrincipalPath = "/api/v1/User/currentPrincipal"

// lookupHeaders are the caller's headers that carry its credential. Only
// these are sent, so the lookup authenticates exactly as the caller does
// and nothing else of the request (which the policy has not yet allowed)
// reaches the backend.
var lookupHeaders = [...]string{HeaderAuthorization, "Cookie", HeaderXSRF, HeaderAppToken}

// Lookup failure reasons.
const (
	ReasonPrincipalUnauthenticated = "principal_unauthenticated"
	ReasonPrincipalLookupFailed    = "principal_lookup_failed"
)

// PrincipalLookup asks the backend who the caller is and caches the
// answer per credential.
type PrincipalLookup struct {
	base    *url.URL
	timeout time.Duration
	client  *http.Client
	cache   *ttlCache
	flight  singleflight.Group
	onCache func(hit bool)

	hits, misses, backendCalls atomic.Int64
}

// NewPrincipalLookup checks cfg and returns a lookup with an empty cache.
func NewPrincipalLookup(cfg PrincipalLookupConfig) (*PrincipalLookup, error) {
	base, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 || cfg.TTL < 0 || cfg.MaxEntries < 0 {
		return nil, errors.New("principal lookup: timeout, ttl and max_entries must not be negative")
	}
	timeout := cmp.Or(cfg.Timeout, DefaultPrincipalTimeout)
	ttl := cmp.Or(cfg.TTL, DefaultPrincipalTTL)
	maxEntries := cmp.Or(cfg.MaxEntries, DefaultPrincipalMaxEntries)

	var client *http.Client
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	} else {
		client = &http.Client{Transport: defaultLookupTransport()}
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	return &PrincipalLookup{
		base:    base,
		timeout: timeout,
		client:  client,
		cache:   newTTLCache(maxEntries, ttl),
		onCache: cfg.OnCache,
	}, nil
}

// defaultLookupTransport is http.DefaultTransport with more idle
// connections per host: every lookup goes to the one backend, and the
// default of 2 would make a burst of distinct callers reconnect.
func defaultLookupTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 32
	return t
}

// parseUpstream accepts scheme://host[:port] with an optional trailing
// slash. User info is refused because it would put a credential in the
// configuration and in every error that quotes the URL; the refusal
// itself does not echo the URL.
func parseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("principal lookup: upstream is not a URL")
	}
	if u.User != nil {
		return nil, errors.New("principal lookup: upstream must not contain user info")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("principal lookup: upstream %q: want http(s)://host[:port]", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("principal lookup: upstream %q: want no path, query or fragment", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// LookupError is a failed principal lookup. Status is the HTTP status the
// gateway should answer with and Reason the stable machine word for the
// client body and audit record. Err never holds a credential value.
type LookupError struct {
	Status int
	Reason string
	Err    error
}

func (e *LookupError) Error() string {
	if e.Err == nil {
		return "credential: " + e.Reason
	}
	return "credential: " + e.Reason + ": " + e.Err.Error()
}

func (e *LookupError) Unwrap() error { return e.Err }

func lookupFailed(err error) *LookupError {
	return &LookupError{Status: http.StatusServiceUnavailable, Reason: ReasonPrincipalLookupFailed, Err: err}
}

// Lookup returns the caller's principal from GET
// {Upstream}{prefix}/api/v1/User/currentPrincipal, sent with the caller's
// own credential headers copied from `from` (Authorization, Cookie,
// X-XSRF-TOKEN, SO-AppToken; nothing else), Accept: application/json.
// Results are cached under key (the caller computes it as a keyed hash
// over all credential headers and the prefix; the cache never sees raw
// credentials) with the TTL and size bound (expirable LRU). Concurrent
// lookups for the same key coalesce into one backend call (singleflight);
// the shared call runs with its own timeout and is not cancelled when the
// first waiting client goes away (context.WithoutCancel + Timeout), while
// each waiter still returns early if its own ctx ends. Failures are not
// cached.
//
// A 401 or 403 from the backend is a *LookupError{Status: 401, Reason:
// "principal_unauthenticated"}; a timeout, network error, 5xx, other
// status, oversized (>1 MiB) or malformed body is a *LookupError{Status:
// 503, Reason: "principal_lookup_failed"}. Error texts never contain
// credential values. Every error is a *LookupError.
//
// prefix is the decoded path before /api ("" or e.g. "/Cust12345"); it is
// escaped when the URL is built, and "." or ".." segments are refused so
// the lookup cannot be steered to another route.
func (l *PrincipalLookup) Lookup(ctx context.Context, key, prefix string, from http.Header) (*Principal, error) {
	if key == "" {
		// An empty key would make every caller share one cache entry,
		// i.e. one caller's identity.
		return nil, lookupFailed(errors.New("empty cache key"))
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

	target, err := l.target(prefix)
	if err != nil {
		return nil, lookupFailed(err)
	}
	// Copy the credential headers now: the shared call may outlive this
	// request, and its header map belongs to the server.
	h := make(http.Header, len(lookupHeaders)+1)
	for _, name := range lookupHeaders {
		if vs := from.Values(name); len(vs) > 0 {
			h[name] = append([]string(nil), vs...)
		}
	}
	h.Set("Accept", "application/json")

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
		cctx, cancel := context.WithTimeout(callCtx, l.timeout)
		defer cancel()
		p, err := l.fetch(cctx, target, h)
		if err != nil {
			return nil, err
		}
		// Added before the flight ends, so that no later caller can miss
		// both the flight and the cache.
		l.cache.add(key, p)
		return p, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*Principal), nil
	case <-ctx.Done():
		return nil, lookupFailed(ctx.Err())
	}
}

// target builds the lookup URL for prefix.
func (l *PrincipalLookup) target(prefix string) (*url.URL, error) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" {
		if prefix[0] != '/' {
			return nil, errors.New("path prefix must start with '/'")
		}
		for seg := range strings.SplitSeq(prefix[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				return nil, errors.New("path prefix has an empty or dot segment")
			}
		}
	}
	u := *l.base
	u.Path = prefix + currentPrincipalPath
	return &u, nil
}

// Stats reports cache hits, misses and backend calls (for metrics and tests).
func (l *PrincipalLookup) Stats() (hits, misses, backendCalls int64) {
	return l.hits.Load(), l.misses.Load(), l.backendCalls.Load()
}

// fetch performs one backend call. Its errors describe the URL and the
// status but never the request headers or the response body.
func (l *PrincipalLookup) fetch(ctx context.Context, target *url.URL, h http.Header) (*Principal, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, lookupFailed(err)
	}
	req.Header = h
	l.backendCalls.Add(1)
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, lookupFailed(err)
	}
	defer func() {
		// Drain a little so the connection can be reused, but never
		// read an unbounded error body.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		// SuperOffice may report an expired token as 403; either way the
		// caller's credential did not identify anyone.
		return nil, &LookupError{Status: http.StatusUnauthorized, Reason: ReasonPrincipalUnauthenticated,
			Err: fmt.Errorf("backend answered HTTP %d", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		return nil, lookupFailed(fmt.Errorf("backend answered HTTP %d", resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPrincipalBody+1))
	if err != nil {
		return nil, lookupFailed(fmt.Errorf("reading principal: %w", err))
	}
	if len(body) > maxPrincipalBody {
		return nil, lookupFailed(fmt.Errorf("principal body exceeds %d bytes", maxPrincipalBody))
	}
	p, err := parseCarrier(body)
	if err != nil {
		return nil, lookupFailed(err)
	}
	return p, nil
}

// soPrincipalCarrier is the part of SoPrincipalCarrier the policy uses.
// encoding/json matches keys case-insensitively, which covers clients and
// versions that camel-case them. FullName and EMailAddress are left out on
// purpose: personal data the policy does not need.
type soPrincipalCarrier struct {
	Associate                 *string
	AssociateID               json.RawMessage `json:"AssociateId"`
	UserType                  json.RawMessage
	RoleName                  string
	UserName                  string
	DatabaseContextIdentifier string
	Licenses                  []json.RawMessage
	FunctionRights            []json.RawMessage
}

// licenseObject is a license given as an object rather than a name.
type licenseObject struct {
	Name        *string
	License     *string
	Description *string
}

// parseCarrier maps a SoPrincipalCarrier. It insists on a JSON object
// naming someone (Associate, AssociateId or UserType), so that a 200 with
// null, an error object or some other document is a failed lookup rather
// than an empty "backend" principal.
func parseCarrier(body []byte) (*Principal, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("malformed principal: not a JSON object")
	}
	var c soPrincipalCarrier
	if err := json.Unmarshal(trimmed, &c); err != nil {
		return nil, fmt.Errorf("malformed principal: %w", err)
	}
	if c.Associate == nil && isAbsent(c.AssociateID) && isAbsent(c.UserType) {
		return nil, errors.New("malformed principal: no Associate, AssociateId or UserType")
	}
	p := &Principal{
		Source:   PrincipalSourceBackend,
		RoleName: c.RoleName,
		UserName: c.UserName,
		Tenant:   canonicalTenant(c.DatabaseContextIdentifier),
		UserType: userType(c.UserType),
	}
	if c.Associate != nil {
		p.Subject = *c.Associate
	}
	if !isAbsent(c.AssociateID) {
		id, ok := rawInt(c.AssociateID)
		if !ok {
			return nil, errors.New("malformed principal: AssociateId is not an integer")
		}
		p.AssociateID = id
	}
	if c.Licenses != nil {
		p.Licenses = make([]string, 0, len(c.Licenses))
		for _, raw := range c.Licenses {
			if name, ok := licenseName(raw); ok {
				p.Licenses = append(p.Licenses, name)
			}
		}
	}
	if c.FunctionRights != nil {
		p.FunctionRights = make([]string, 0, len(c.FunctionRights))
		for _, raw := range c.FunctionRights {
			var s string
			if !isAbsent(raw) && json.Unmarshal(raw, &s) == nil && s != "" {
				p.FunctionRights = append(p.FunctionRights, s)
			}
		}
	}
	return p, nil
}

func isAbsent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// rawInt reads an integer sent as a number or as a numeric string.
func rawInt(raw json.RawMessage) (int64, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		return n, err == nil
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil {
		return 0, false
	}
	i := floatInt(f)
	return i, i != 0 || f == 0
}

// userType returns the UserType name. Known names are spelt canonically;
// an unknown name is kept as sent, so a newer backend's value reaches the
// policy rather than being guessed at; numbers 0..5 are the enum's order;
// absent, null or out-of-range values are "Unknown", the enum's own zero.
func userType(raw json.RawMessage) string {
	if isAbsent(raw) {
		return userTypes[0]
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, name := range userTypes {
			if strings.EqualFold(s, name) {
				return name
			}
		}
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			return userTypeNumber(int64(n))
		}
		if s == "" {
			return userTypes[0]
		}
		return s
	}
	if n, ok := rawInt(raw); ok {
		return userTypeNumber(n)
	}
	return userTypes[0]
}

func userTypeNumber(n int64) string {
	if n < 0 || n >= int64(len(userTypes)) {
		return userTypes[0]
	}
	return userTypes[n]
}

// licenseName reads one Licenses element: a string, or an object's Name,
// License or Description string (in that order). Anything else, null and
// empty names included, is skipped.
func licenseName(raw json.RawMessage) (string, bool) {
	if isAbsent(raw) {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, s != ""
	}
	var o licenseObject
	if json.Unmarshal(raw, &o) != nil {
		return "", false
	}
	for _, v := range [...]*string{o.Name, o.License, o.Description} {
		if v != nil && *v != "" {
			return *v, true
		}
	}
	return "", false
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

func newTTLCache(size int, ttl time.Duration) *ttlCache {
	c, err := lru.New[string, ttlEntry](size)
	if err != nil {
		panic(fmt.Sprintf("credential: principal cache of size %d: %v", size, err)) // size is checked > 0 above
	}
	return &ttlCache{lru: c, ttl: ttl}
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
