package credential

import (
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
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is an immutable, pre-indexed JWKS, so that the hot path does a
// map lookup and never re-parses JSON.
type keySet struct {
	set    jose.JSONWebKeySet
	byKID  map[string][]jose.JSONWebKey
	single *jose.JSONWebKey // the only key, when the set has exactly one
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

// refreshLoop fetches the key set every period until ctx ends, so that
// keys the issuer withdraws stop verifying within one period.
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

// redactedURL is the JWKS URL without its user info, for error texts
// that reach logs.
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
