package credential

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejson "github.com/go-jose/go-jose/v4/json"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
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

// keySet is an immutable, pre-indexed JWKS, so that the hot path does a
// map lookup and never re-parses JSON.
type keySet struct {
	set    jose.JSONWebKeySet
	byKID  map[string][]jose.JSONWebKey
	single *jose.JSONWebKey // the only key, when the set has exactly one
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
	}
	if cfg.Issuer == "" {
		return nil, errors.New("jwt: issuer is required")
	}
	if len(cfg.Audiences) == 0 {
		return nil, errors.New("jwt: at least one audience is required")
	}
	for _, a := range cfg.Audiences {
		if a == "" {
			return nil, errors.New("jwt: empty audience")
		}
	}
	v.audiences = append(josejwt.Audience(nil), cfg.Audiences...)

	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = defaultJWTAlgorithms
	}
	for _, a := range algs {
		alg := jose.SignatureAlgorithm(a)
		switch {
		case asymmetricAlgorithms[alg]:
			v.algs = append(v.algs, alg)
		case a == "none" || alg == jose.HS256 || alg == jose.HS384 || alg == jose.HS512:
			return nil, fmt.Errorf("jwt: algorithm %q refused: tokens are verified with public keys only", a)
		default:
			return nil, fmt.Errorf("jwt: unknown algorithm %q (want one of RS256..512, PS256..512, ES256..512, EdDSA)", a)
		}
	}

	switch {
	case v.leeway == 0:
		v.leeway = defaultJWTLeeway
	case v.leeway < 0 || v.leeway > maxJWTLeeway:
		return nil, fmt.Errorf("jwt: leeway %s out of range (0 to %s)", cfg.Leeway, maxJWTLeeway)
	}
	switch {
	case v.maxBytes == 0:
		v.maxBytes = defaultJWTMaxTokenBytes
	case v.maxBytes < 0:
		return nil, fmt.Errorf("jwt: negative max token size %d", cfg.MaxTokenBytes)
	}
	for _, c := range cfg.RequiredClaims {
		if c == "" {
			return nil, errors.New("jwt: empty required claim name")
		}
	}
	v.required = append([]string(nil), cfg.RequiredClaims...)

	refresh := cfg.RefreshInterval
	switch {
	case refresh == 0:
		refresh = defaultJWKSRefreshInterval
	case refresh < 0:
		return nil, fmt.Errorf("jwt: negative JWKS refresh interval %s", cfg.RefreshInterval)
	}
	switch {
	case v.minRefresh == 0:
		v.minRefresh = defaultJWKSMinRefresh
	case v.minRefresh < 0:
		return nil, fmt.Errorf("jwt: negative JWKS minimum refresh interval %s", cfg.MinRefreshInterval)
	}

	switch {
	case cfg.JWKSFile != "" && cfg.JWKSURL != "":
		return nil, errors.New("jwt: set either a JWKS file or a JWKS URL, not both")
	case cfg.JWKSFile != "":
		data, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: reading JWKS file: %w", err)
		}
		ks, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("jwt: JWKS file %s: %w", cfg.JWKSFile, err)
		}
		v.keys.Store(ks)
		return v, nil
	case cfg.JWKSURL != "":
	default:
		return nil, errors.New("jwt: a JWKS file or a JWKS URL is required")
	}

	u, err := url.Parse(cfg.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("jwt: JWKS URL must be an absolute http or https URL")
	}
	v.jwksURL = u.String()
	v.client = cfg.HTTPClient
	if v.client == nil {
		v.client = &http.Client{Timeout: defaultJWKSFetchTimeout, CheckRedirect: noDowngrade}
	}
	ks, err := v.fetch(ctx)
	if err != nil {
		return nil, err
	}
	v.keys.Store(ks)

	// The refresh goroutine outlives ctx on purpose: ctx may be a
	// provisioning deadline, and the keys must keep rotating afterwards.
	loopCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	v.stop = stop
	v.done = make(chan struct{})
	go v.refreshLoop(loopCtx, refresh)
	return v, nil
}

// noDowngrade keeps a JWKS fetched over https from being redirected to
// plain http, where anyone on the path could substitute keys.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("redirect from https to http refused")
	}
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

func (v *JWTVerifier) refreshLoop(ctx context.Context, every time.Duration) {
	defer close(v.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case v.fetchSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		// A failed refresh keeps the previous keys: an issuer outage must
		// not lock every caller out, and the next tick retries.
		if ks, err := v.fetch(ctx); err == nil {
			v.keys.Store(ks)
		}
		<-v.fetchSem
	}
}

// refreshForUnknownKID fetches the key set once on behalf of a token whose
// kid is unknown, at most once per minRefresh. seen is the set the caller
// looked in; if another goroutine replaced it meanwhile, that newer set is
// returned without a fetch. It returns nil when there is nothing new.
func (v *JWTVerifier) refreshForUnknownKID(ctx context.Context, seen *keySet) *keySet {
	select {
	case v.fetchSem <- struct{}{}:
	case <-ctx.Done():
		return nil
	}
	defer func() { <-v.fetchSem }()
	if cur := v.keys.Load(); cur != seen {
		return cur
	}
	now := time.Now()
	if !v.lastOnDemand.IsZero() && now.Sub(v.lastOnDemand) < v.minRefresh {
		return nil
	}
	// The slot is spent even if the fetch fails, so that forged kids
	// cannot hammer an issuer that is already struggling.
	v.lastOnDemand = now
	ks, err := v.fetch(ctx)
	if err != nil {
		return nil
	}
	v.keys.Store(ks)
	return ks
}

// fetch GETs and parses the JWKS URL. Only the configured URL is ever
// fetched: "jku", "x5u" and embedded "jwk" token headers are ignored,
// since following them would let the token choose its own key.
func (v *JWTVerifier) fetch(ctx context.Context) (*keySet, error) {
	redacted := v.redactedURL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwt: JWKS %s: %w", redacted, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("jwt: fetching JWKS %s: %w", redacted, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("jwt: fetching JWKS %s: status %d", redacted, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwt: reading JWKS %s: %w", redacted, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwt: JWKS %s larger than %d bytes", redacted, maxJWKSBytes)
	}
	ks, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwt: JWKS %s: %w", redacted, err)
	}
	return ks, nil
}

func (v *JWTVerifier) redactedURL() string {
	u, err := url.Parse(v.jwksURL)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// parseJWKS keeps the usable public signature keys of a JWKS document.
// Keys it does not understand, encryption keys, symmetric keys and short
// RSA keys are skipped (RFC 7517 §5 says to ignore what is not
// understood); private key material fails the whole set, because an issuer
// publishing its private key can no longer be trusted.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []stdjson.RawMessage `json:"keys"`
	}
	if err := stdjson.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	ks := &keySet{byKID: map[string][]jose.JSONWebKey{}}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		switch key := k.Key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			return nil, errors.New("key set contains private key material")
		case []byte:
			continue // symmetric: never usable, since HS* is refused
		case *rsa.PublicKey:
			if key.N.BitLen() < minRSAModulusBits {
				continue
			}
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.Valid() || !k.IsPublic() {
			continue
		}
		ks.set.Keys = append(ks.set.Keys, k)
		ks.byKID[k.KeyID] = append(ks.byKID[k.KeyID], k)
	}
	if len(ks.set.Keys) == 0 {
		return nil, errors.New("no usable public signature keys")
	}
	if len(ks.set.Keys) == 1 {
		ks.single = &ks.set.Keys[0]
	}
	return ks, nil
}

// keyFits reports whether k may verify a signature made with alg: the
// key's type and curve must match, and a key that names its "alg" is used
// with that alg only (RFC 8725 §3.1).
func keyFits(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		name := key.Curve.Params().Name
		return alg == jose.ES256 && name == "P-256" ||
			alg == jose.ES384 && name == "P-384" ||
			alg == jose.ES512 && name == "P-521"
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// candidates returns the keys that may have signed a token with kid and
// alg. A token without a kid may use the only key of a single-key set,
// common for issuers that never rotate by kid; with several keys, trying
// them all would let the token pick the weakest.
func (ks *keySet) candidates(kid string, alg jose.SignatureAlgorithm) []jose.JSONWebKey {
	if kid == "" {
		if ks.single != nil && keyFits(ks.single, alg) {
			return ks.set.Keys[:1]
		}
		return nil
	}
	keys := ks.byKID[kid]
	for i := range keys {
		if !keyFits(&keys[i], alg) {
			// Rare (several keys under one kid); only then allocate a
			// filtered copy.
			var out []jose.JSONWebKey
			for j := range keys {
				if keyFits(&keys[j], alg) {
					out = append(out, keys[j])
				}
			}
			return out
		}
	}
	return keys
}

// rawPayload captures the verified payload bytes as go-jose hands them to
// Claims, so that they can be decoded a second time into a generic map.
type rawPayload []byte

func (r *rawPayload) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

func invalidToken(reason string) error { return &Failure{Reason: reason, InvalidToken: true} }

// Verify checks the signature (key by "kid"; when the kid is unknown and
// the key set came from a URL, refresh once, rate-limited by
// MinRefreshInterval, then retry), the alg allow-list, iss, aud,
// exp/nbf/iat with leeway (exp is required), and the required claims, and
// returns all verified claims as a map. JSON numbers in the map are
// encoding/json.Number, so that large integer ids keep every digit;
// strings, booleans, null, arrays ([]any) and objects (map[string]any)
// are as encoding/json decodes them.
//
// Every failure is a *Failure with InvalidToken true and a Reason from:
// "token_too_large", "token_malformed", "alg_not_allowed", "unknown_kid",
// "bad_signature", "token_expired", "token_not_yet_valid",
// "token_issued_in_future", "wrong_issuer", "wrong_audience",
// "missing_claim". The error text never contains the token.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (map[string]any, error) {
	if len(token) > v.maxBytes {
		return nil, invalidToken("token_too_large")
	}
	tok, err := josejwt.ParseSigned(token, v.algs)
	if err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) && ua.Got != "" {
			return nil, invalidToken("alg_not_allowed")
		}
		// Includes a header without "alg", which RFC 7515 requires.
		return nil, invalidToken("token_malformed")
	}
	if len(tok.Headers) != 1 {
		return nil, invalidToken("token_malformed")
	}
	kid := tok.Headers[0].KeyID
	alg := jose.SignatureAlgorithm(tok.Headers[0].Algorithm)

	ks := v.keys.Load()
	cands := ks.candidates(kid, alg)
	if len(cands) == 0 && kid != "" && v.jwksURL != "" {
		// The issuer may have rotated keys since the last refresh.
		if fresh := v.refreshForUnknownKID(ctx, ks); fresh != nil {
			cands = fresh.candidates(kid, alg)
		}
	}
	if len(cands) == 0 {
		return nil, invalidToken("unknown_kid")
	}

	var std josejwt.Claims
	var payload rawPayload
	verified := false
	for i := range cands {
		err = tok.Claims(cands[i].Key, &std, &payload)
		if err == nil {
			verified = true
			break
		}
		if !errors.Is(err, jose.ErrCryptoFailure) {
			// The signature held (or a "crit" header is unsupported) but
			// the payload is not a well-formed claims object.
			return nil, invalidToken("token_malformed")
		}
	}
	if !verified {
		return nil, invalidToken("bad_signature")
	}

	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, invalidToken("token_malformed")
	}

	err = std.ValidateWithLeeway(josejwt.Expected{
		Issuer:      v.issuer,
		AnyAudience: v.audiences,
		Time:        time.Now(),
	}, v.leeway)
	switch {
	case err == nil:
	case errors.Is(err, josejwt.ErrInvalidIssuer):
		return nil, invalidToken("wrong_issuer")
	case errors.Is(err, josejwt.ErrInvalidAudience):
		return nil, invalidToken("wrong_audience")
	case errors.Is(err, josejwt.ErrExpired):
		return nil, invalidToken("token_expired")
	case errors.Is(err, josejwt.ErrNotValidYet):
		return nil, invalidToken("token_not_yet_valid")
	case errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return nil, invalidToken("token_issued_in_future")
	default:
		return nil, invalidToken("token_malformed")
	}

	// A token without "exp" would be a credential that never expires.
	if std.Expiry == nil {
		return nil, invalidToken("missing_claim")
	}
	for _, name := range v.required {
		if claims[name] == nil {
			return nil, invalidToken("missing_claim")
		}
	}
	return claims, nil
}

// decodeClaims decodes the verified payload with go-jose's JSON decoder,
// which matches names case-sensitively and rejects duplicate keys at every
// level (so the map cannot disagree with the claims go-jose validated),
// then converts its number type to encoding/json.Number so callers do not
// depend on go-jose's JSON fork.
func decodeClaims(payload []byte) (map[string]any, error) {
	dec := josejson.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("claims are not an object")
	}
	for k, e := range m {
		m[k] = normalizeJSON(e)
	}
	return m, nil
}

func normalizeJSON(v any) any {
	switch t := v.(type) {
	case josejson.Number:
		return stdjson.Number(t)
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalizeJSON(e)
		}
	}
	return v
}
