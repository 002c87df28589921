package credential

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// Defaults and bounds of JWTConfig.
const (
	defaultJWTLeeway           = 30 * time.Second
	maxJWTLeeway               = 5 * time.Minute
	defaultJWKSRefreshInterval = 15 * time.Minute
	defaultJWKSMinRefresh      = 30 * time.Second
	defaultJWTMaxTokenBytes    = 8192
	defaultJWKSFetchTimeout    = 10 * time.Second
	maxJWKSBytes               = 1 << 20 // a real key set is a few KiB; more is a mistake or an attack
	minRSAModulusBits          = 2048    // RFC 7518 §3.3: smaller RSA keys MUST NOT be used
)

// defaultJWTAlgorithms are SuperOffice's (RS256) and the most common
// alternative for identity providers that sign bot tokens (ES256).
var defaultJWTAlgorithms = []string{"RS256", "ES256"}

// asymmetricAlgorithms are the only "alg"s a verifier may allow: each
// needs a public key, so a key set can never double as an HMAC secret.
var asymmetricAlgorithms = map[jose.SignatureAlgorithm]bool{
	jose.RS256: true, jose.RS384: true, jose.RS512: true,
	jose.PS256: true, jose.PS384: true, jose.PS512: true,
	jose.ES256: true, jose.ES384: true, jose.ES512: true,
	jose.EdDSA: true,
}

// JWTConfig configures verification of JWT bearer tokens.
type JWTConfig struct {
	// Issuer is required and must equal the token's "iss" exactly: a
	// token minted by anyone else is not a credential for this gateway,
	// whoever's key signed it.
	Issuer string
	// Audiences is required; the token's "aud" must contain at least one
	// of them, so that a token issued to another application of the same
	// issuer is refused.
	Audiences []string
	// Algorithms lists the allowed "alg"s; empty means RS256 and ES256.
	// "none" and every HS* are refused by NewJWTVerifier: with a public
	// key set, an HMAC "alg" would let anyone holding the public key mint
	// tokens (the classic algorithm-confusion attack).
	Algorithms []string
	// Leeway is the clock skew allowed for exp, nbf and iat; zero means
	// 30s. More than 5m is refused, because leeway extends every stolen
	// token's life by as much.
	Leeway time.Duration
	// JWKSFile names a JWKS JSON file. Exactly one of JWKSFile and JWKSURL
	// must be set.
	JWKSFile string
	// JWKSURL is an http or https JWKS URL, fetched at start and then
	// refreshed every RefreshInterval and when a token names an unknown
	// "kid".
	JWKSURL string
	// RefreshInterval is the period of JWKS refreshes for URLs; zero means
	// 15m. It bounds how long a key the issuer has withdrawn keeps
	// verifying tokens.
	RefreshInterval time.Duration
	// MinRefreshInterval rate-limits the refreshes triggered by an unknown
	// "kid"; zero means 30s. The kid is chosen by whoever sends the token,
	// so without a limit every forged token would cost the issuer a fetch.
	MinRefreshInterval time.Duration
	// RequiredClaims must be present and non-null in the token, in
	// addition to "exp", which is always required.
	RequiredClaims []string
	// MaxTokenBytes bounds the token length; zero means 8192. Longer
	// tokens are refused before any parsing or cryptography.
	MaxTokenBytes int
	// HTTPClient fetches JWKS URLs; nil means a client with a 10s timeout
	// that refuses redirects from https to http.
	HTTPClient *http.Client
	// CacheTTL is the longest a successful verification is reused for
	// the same token (see tokenCache); zero means DefaultJWTCacheTTL (5m),
	// negative disables the cache, more than MaxJWTCacheTTL (1h) is
	// refused. Expiry, not-before and the key set are checked on every
	// use whatever the TTL.
	CacheTTL time.Duration
	// CacheMaxEntries bounds the cache; zero means
	// DefaultJWTCacheMaxEntries (1024), negative is refused.
	CacheMaxEntries int
}

// JWTVerifier verifies JWT bearer tokens against one issuer's key set.
// It is safe for concurrent use. Verification reads the key set through an
// atomic pointer, so refreshes never block tokens signed with known keys.
type JWTVerifier struct {
	issuer    string
	audiences josejwt.Audience
	algs      []jose.SignatureAlgorithm
	leeway    time.Duration
	required  []string
	maxBytes  int

	jwksURL    string // "" when the key set came from a file
	client     *http.Client
	minRefresh time.Duration

	keys atomic.Pointer[keySet]

	// cache holds successful verifications by token hash; nil when
	// disabled.
	cache *tokenCache
	// now is the clock of the claim checks and the cache (time.Now; a
	// test replaces it before the first Verify).
	now func() time.Time
	// hits counts the tokens answered from the cache, verified those
	// verified from scratch (parse, signature, claims), whatever the
	// outcome.
	hits, verified atomic.Int64

	// fetchSem serialises JWKS fetches (periodic and on demand), so that a
	// burst of tokens with a new kid causes one fetch and an older response
	// can never overwrite a newer one.
	fetchSem chan struct{}
	// lastOnDemand is when an unknown kid last triggered a fetch; guarded
	// by fetchSem.
	lastOnDemand time.Time

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

// NewJWTVerifier validates cfg and loads the key set (file read or first
// URL fetch; a failed first URL fetch is an error too, so a misconfigured
// gateway fails at config load), and for URLs starts a background refresh
// goroutine. ctx bounds only that first load; the goroutine runs until
// Close, so callers must Close the verifier when they discard it.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	v := &JWTVerifier{
		issuer:     cfg.Issuer,
		leeway:     cfg.Leeway,
		maxBytes:   cfg.MaxTokenBytes,
		minRefresh: cfg.MinRefreshInterval,
		fetchSem:   make(chan struct{}, 1),
		now:        time.Now,
	}
	if cfg.Issuer == "" {
		return nil, errors.New("jwt: issuer is required")
	}
	if err := v.setAudiences(cfg.Audiences); err != nil {
		return nil, err
	}
	if err := v.setAlgorithms(cfg.Algorithms); err != nil {
		return nil, err
	}
	refresh, err := v.setLimits(cfg)
	if err != nil {
		return nil, err
	}
	if err := v.setCache(cfg); err != nil {
		return nil, err
	}
	switch {
	case cfg.JWKSFile != "" && cfg.JWKSURL != "":
		return nil, errors.New("jwt: set either a JWKS file or a JWKS URL, not both")
	case cfg.JWKSFile != "":
		err = v.loadFile(cfg.JWKSFile)
	case cfg.JWKSURL != "":
		err = v.startURL(ctx, cfg.JWKSURL, cfg.HTTPClient, refresh)
	default:
		return nil, errors.New("jwt: a JWKS file or a JWKS URL is required")
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

func (v *JWTVerifier) setAudiences(auds []string) error {
	if len(auds) == 0 {
		return errors.New("jwt: at least one audience is required")
	}
	for _, a := range auds {
		if a == "" {
			return errors.New("jwt: empty audience")
		}
	}
	v.audiences = append(josejwt.Audience(nil), auds...)
	return nil
}

// setAlgorithms builds the "alg" allow-list. HMAC and "none" are named
// apart from merely unknown words, so that an operator who configured
// them learns why they will never be accepted.
func (v *JWTVerifier) setAlgorithms(algs []string) error {
	if len(algs) == 0 {
		algs = defaultJWTAlgorithms
	}
	for _, a := range algs {
		alg := jose.SignatureAlgorithm(a)
		switch {
		case asymmetricAlgorithms[alg]:
			v.algs = append(v.algs, alg)
		case a == "none" || alg == jose.HS256 || alg == jose.HS384 || alg == jose.HS512:
			return fmt.Errorf("jwt: algorithm %q refused: tokens are verified with public keys only", a)
		default:
			return fmt.Errorf("jwt: unknown algorithm %q (want one of RS256..512, PS256..512, ES256..512, EdDSA)", a)
		}
	}
	return nil
}

// setLimits applies the defaults of the time and size bounds and refuses
// those out of range; it returns the periodic refresh interval, which
// only the URL loader needs.
func (v *JWTVerifier) setLimits(cfg JWTConfig) (refresh time.Duration, err error) {
	switch {
	case v.leeway == 0:
		v.leeway = defaultJWTLeeway
	case v.leeway < 0 || v.leeway > maxJWTLeeway:
		return 0, fmt.Errorf("jwt: leeway %s out of range (0 to %s)", cfg.Leeway, maxJWTLeeway)
	}
	switch {
	case v.maxBytes == 0:
		v.maxBytes = defaultJWTMaxTokenBytes
	case v.maxBytes < 0:
		return 0, fmt.Errorf("jwt: negative max token size %d", cfg.MaxTokenBytes)
	}
	for _, c := range cfg.RequiredClaims {
		if c == "" {
			return 0, errors.New("jwt: empty required claim name")
		}
	}
	v.required = append([]string(nil), cfg.RequiredClaims...)
	refresh = cfg.RefreshInterval
	switch {
	case refresh == 0:
		refresh = defaultJWKSRefreshInterval
	case refresh < 0:
		return 0, fmt.Errorf("jwt: negative JWKS refresh interval %s", cfg.RefreshInterval)
	}
	switch {
	case v.minRefresh == 0:
		v.minRefresh = defaultJWKSMinRefresh
	case v.minRefresh < 0:
		return 0, fmt.Errorf("jwt: negative JWKS minimum refresh interval %s", cfg.MinRefreshInterval)
	}
	return refresh, nil
}

// setCache builds the verified-token cache, unless CacheTTL disables it.
func (v *JWTVerifier) setCache(cfg JWTConfig) error {
	ttl, size := cfg.CacheTTL, cfg.CacheMaxEntries
	switch {
	case ttl < 0:
		return nil
	case ttl == 0:
		ttl = DefaultJWTCacheTTL
	case ttl > MaxJWTCacheTTL:
		return fmt.Errorf("jwt: cache TTL %s out of range (0 to %s)", ttl, MaxJWTCacheTTL)
	}
	switch {
	case size == 0:
		size = DefaultJWTCacheMaxEntries
	case size < 0:
		return fmt.Errorf("jwt: negative cache size %d", size)
	}
	c, err := newTokenCache(size, ttl)
	if err != nil {
		return err
	}
	v.cache = c
	return nil
}

// CacheStats reports the tokens answered from the cache and those
// verified from scratch (successfully or not), for metrics and tests.
func (v *JWTVerifier) CacheStats() (hits, verified int64) {
	return v.hits.Load(), v.verified.Load()
}

// loadFile reads a key set once: a file is never refreshed, so rotating
// its keys means reloading the config.
func (v *JWTVerifier) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("jwt: reading JWKS file: %w", err)
	}
	ks, err := parseJWKS(data)
	if err != nil {
		return fmt.Errorf("jwt: JWKS file %s: %w", path, err)
	}
	v.keys.Store(ks)
	return nil
}

// startURL fetches the key set once under ctx, then keeps it fresh in a
// goroutine that outlives ctx on purpose: ctx may be a provisioning
// deadline, and the keys must keep rotating afterwards.
func (v *JWTVerifier) startURL(ctx context.Context, rawURL string, client *http.Client, refresh time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("jwt: JWKS URL must be an absolute http or https URL")
	}
	v.jwksURL = u.String()
	v.client = client
	if v.client == nil {
		v.client = &http.Client{Timeout: defaultJWKSFetchTimeout, CheckRedirect: noDowngrade}
	}
	ks, err := v.fetch(ctx)
	if err != nil {
		return err
	}
	v.keys.Store(ks)
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	v.stop = stop
	v.done = make(chan struct{})
	go v.refreshLoop(loopCtx, refresh)
	return nil
}

// Close stops the refresh goroutine and waits for it to exit. It is safe
// to call more than once, and on a verifier whose keys came from a file.
func (v *JWTVerifier) Close() {
	v.closeOnce.Do(func() {
		if v.stop != nil {
			v.stop()
			<-v.done
		}
	})
}

// invalidToken is the refusal of a presented JWT; cause, when there is
// one, is for the gateway's log and never holds the token.
func invalidToken(reason string, cause error) error {
	return refusal.Unauthenticated(reason, true).Wrap(cause)
}

// Verify checks the signature (key by "kid"; when the kid is unknown and
// the key set came from a URL, refresh once, rate-limited by
// MinRefreshInterval, then retry), the alg allow-list, iss, aud,
// exp/nbf/iat with leeway (exp is required), and the required claims, and
// returns all verified claims as a map. JSON numbers in the map are
// encoding/json.Number, so that large integer ids keep every digit;
// strings, booleans, null, arrays ([]any) and objects (map[string]any)
// are as encoding/json decodes them.
//
// A token that verified before is answered from the cache (see
// tokenCache) for at most CacheTTL, with its times and key re-checked.
// Every call returns a map of its own, cached or not, so that no caller
// can change the claims another request sees.
//
// Every failure is a 401 *refusal.Refusal with InvalidToken set and one
// reason of refusal.TokenTooLarge, TokenMalformed, AlgNotAllowed,
// UnknownKID, BadSignature, TokenExpired, TokenNotYetValid,
// TokenIssuedInFuture, WrongIssuer, WrongAudience or MissingClaim; its
// Err holds the cause where there is one. The error text never contains
// the token.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (map[string]any, error) {
	// Before hashing too: the bound is also on the work a caller can
	// cause.
	if len(token) > v.maxBytes {
		return nil, invalidToken(refusal.TokenTooLarge, nil)
	}
	if v.cache == nil {
		e, _, err := v.verify(ctx, token)
		if err != nil {
			return nil, err
		}
		return e.claims, nil
	}
	k := hashToken(token)
	if claims, ok := v.cache.get(v, k, v.keys.Load(), v.now()); ok {
		v.hits.Add(1)
		return cloneClaims(claims), nil
	}
	e, ks, err := v.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.cache.add(k, e, ks, v.now())
	return cloneClaims(e.claims), nil
}

// verify is the uncached verification. It returns the verified token as
// a cache entry, with the key set its key was found in.
func (v *JWTVerifier) verify(ctx context.Context, token string) (*tokenEntry, *keySet, error) {
	v.verified.Add(1)
	tok, err := v.parse(token)
	if err != nil {
		return nil, nil, err
	}
	e, ks, payload, err := v.verifySignature(ctx, tok)
	if err != nil {
		return nil, nil, err
	}
	e.claims, err = decodeClaims(payload)
	if err != nil {
		return nil, nil, invalidToken(refusal.TokenMalformed, fmt.Errorf("jwt: decoding claims: %w", err))
	}
	if err := v.checkClaims(e.std, e.claims, v.now()); err != nil {
		return nil, nil, err
	}
	return e, ks, nil
}

// parse reads the compact JWS with the allow-list applied, so that a
// token with another "alg" is refused before any key is looked at.
func (v *JWTVerifier) parse(token string) (*josejwt.JSONWebToken, error) {
	tok, err := josejwt.ParseSigned(token, v.algs)
	if err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) && ua.Got != "" {
			return nil, invalidToken(refusal.AlgNotAllowed, fmt.Errorf("jwt: parsing token: %w", err))
		}
		// Includes a header without "alg", which RFC 7515 requires.
		return nil, invalidToken(refusal.TokenMalformed, fmt.Errorf("jwt: parsing token: %w", err))
	}
	if len(tok.Headers) != 1 {
		return nil, invalidToken(refusal.TokenMalformed, fmt.Errorf("jwt: %d signatures, want one", len(tok.Headers)))
	}
	return tok, nil
}

// verifySignature finds the keys that may have signed tok and returns,
// for the first that verifies it, an entry with the standard claims, the
// kid, alg and key, the key set the key was found in, and the raw payload.
func (v *JWTVerifier) verifySignature(ctx context.Context, tok *josejwt.JSONWebToken) (*tokenEntry, *keySet, rawPayload, error) {
	e := &tokenEntry{kid: tok.Headers[0].KeyID, alg: jose.SignatureAlgorithm(tok.Headers[0].Algorithm)}
	var payload rawPayload
	ks, cands := v.candidates(ctx, e.kid, e.alg)
	if len(cands) == 0 {
		return nil, nil, nil, invalidToken(refusal.UnknownKID, nil)
	}
	var err error
	for i := range cands {
		err = tok.Claims(cands[i].Key, &e.std, &payload)
		if err == nil {
			e.key = cands[i].Key
			return e, ks, payload, nil
		}
		if !errors.Is(err, jose.ErrCryptoFailure) {
			// The signature held (or a "crit" header is unsupported) but
			// the payload is not a well-formed claims object.
			return nil, nil, nil, invalidToken(refusal.TokenMalformed, fmt.Errorf("jwt: reading claims: %w", err))
		}
	}
	return nil, nil, nil, invalidToken(refusal.BadSignature, fmt.Errorf("jwt: no candidate key verifies the signature: %w", err))
}

// candidates looks the keys up in the current set and, when the kid is
// unknown and the set comes from a URL, once more after a refresh: the
// issuer may have rotated keys since the last one. It returns the set the
// keys come from.
func (v *JWTVerifier) candidates(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (*keySet, []jose.JSONWebKey) {
	ks := v.keys.Load()
	cands := ks.candidates(kid, alg)
	if len(cands) == 0 && kid != "" && v.jwksURL != "" {
		if fresh := v.refreshForUnknownKID(ctx, ks); fresh != nil {
			return fresh, fresh.candidates(kid, alg)
		}
	}
	return ks, cands
}
