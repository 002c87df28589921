package credential

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"time"

	josejson "github.com/go-jose/go-jose/v4/json"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// rawPayload captures the verified payload bytes as go-jose hands them to
// Claims, so that they can be decoded a second time into a generic map.
type rawPayload []byte

// UnmarshalJSON copies b: the decoder may reuse it once the call returns.
func (r *rawPayload) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

// claimRefusals names the sentinels ValidateWithLeeway returns; any
// other validation error means claims go-jose could not read, a
// malformed token.
var claimRefusals = []struct {
	err    error
	reason string
}{
	{josejwt.ErrInvalidIssuer, refusal.WrongIssuer},
	{josejwt.ErrInvalidAudience, refusal.WrongAudience},
	{josejwt.ErrExpired, refusal.TokenExpired},
	{josejwt.ErrNotValidYet, refusal.TokenNotYetValid},
	{josejwt.ErrIssuedInTheFuture, refusal.TokenIssuedInFuture},
}

// checkClaims validates iss, aud and the times at now with leeway, then
// the claims that must be present. It is the one check of a token's
// claims, for a fresh verification and for every cache hit alike.
func (v *JWTVerifier) checkClaims(std josejwt.Claims, claims map[string]any, now time.Time) error {
	err := std.ValidateWithLeeway(josejwt.Expected{
		Issuer:      v.issuer,
		AnyAudience: v.audiences,
		Time:        now,
	}, v.leeway)
	if err != nil {
		cause := fmt.Errorf("jwt: validating claims: %w", err)
		for _, cr := range claimRefusals {
			if errors.Is(err, cr.err) {
				return invalidToken(cr.reason, cause)
			}
		}
		return invalidToken(refusal.TokenMalformed, cause)
	}
	// A token without "exp" would be a credential that never expires.
	if std.Expiry == nil {
		return invalidToken(refusal.MissingClaim, errors.New(`jwt: claim "exp" missing`))
	}
	for _, name := range v.required {
		if claims[name] == nil {
			return invalidToken(refusal.MissingClaim, fmt.Errorf("jwt: required claim %q missing", name))
		}
	}
	return nil
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

// normalizeJSON swaps go-jose's number type for encoding/json's at every
// depth, since policies and principals read nested claims too.
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
