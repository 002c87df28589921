package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

const (
	jtIssuer   = "https://sod.superoffice.com"
	jtAudience = "app-4711"
	jtSOPrefix = "http://schemes.superoffice.net/identity/"
)

// jtKeySet holds test keys, generated once per test binary because RSA
// generation dominates the run time otherwise.
type jtKeySet struct {
	rsa1, rsa2, rsaOther *rsa.PrivateKey
	ec1, ecOther         *ecdsa.PrivateKey
}

var jtKeys = sync.OnceValue(func() jtKeySet {
	gr := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	ge := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	return jtKeySet{rsa1: gr(), rsa2: gr(), rsaOther: gr(), ec1: ge(), ecOther: ge()}
})

// jtPublic is the JWK of priv's public half.
func jtPublic(priv any, kid, alg string) jose.JSONWebKey {
	var pub any
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	default:
		pub = priv
	}
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}
}

func jtJWKS(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jtClaims are valid claims for the test issuer, for mod to spoil.
func jtClaims(mod func(m map[string]any)) map[string]any {
	now := time.Now()
	m := map[string]any{
		"iss": jtIssuer,
		"aud": jtAudience,
		"sub": "bot-1",
		"exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Add(-10 * time.Second).Unix(),
		"nbf": now.Add(-10 * time.Second).Unix(),
	}
	if mod != nil {
		mod(m)
	}
	return m
}

// jtSign signs claims (a map, or []byte for a raw payload) with priv.
func jtSign(t testing.TB, alg jose.SignatureAlgorithm, priv any, kid string, claims any, opts *jose.SignerOptions) string {
	t.Helper()
	if opts == nil {
		opts = &jose.SignerOptions{}
	}
	opts = opts.WithType("JWT")
	key := jose.SigningKey{Algorithm: alg, Key: priv}
	if kid != "" {
		key.Key = jose.JSONWebKey{Key: priv, KeyID: kid}
	}
	sig, err := jose.NewSigner(key, opts)
	if err != nil {
		t.Fatal(err)
	}
	if raw, ok := claims.([]byte); ok {
		obj, err := sig.Sign(raw)
		if err != nil {
			t.Fatal(err)
		}
		s, err := obj.CompactSerialize()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, err := josejwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func jtB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func jtB64JSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// jtServer serves a JWKS that tests can rotate or break, counting hits.
type jtServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int64
}

func newJTServer(t testing.TB, jwks []byte) *jtServer {
	t.Helper()
	s := &jtServer{}
	s.set(jwks)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(int(s.status.Load()))
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jtServer) set(b []byte) { s.body.Store(&b) }

func newJTVerifier(t testing.TB, cfg JWTConfig) *JWTVerifier {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = jtIssuer
	}
	if cfg.Audiences == nil {
		cfg.Audiences = []string{jtAudience}
	}
	v, err := NewJWTVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewJWTVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// jtCheckRefusal asserts err is the 401 invalid-token refusal of reason,
// and that no rendering of it carries the token or any of its parts.
func jtCheckRefusal(t *testing.T, err error, reason, token string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify succeeded, want %s", reason)
	}
	f, ok := refusal.As(err)
	if !ok {
		t.Fatalf("error %T %v is not a *refusal.Refusal", err, err)
	}
	if f.Reason() != reason || !f.InvalidToken {
		t.Errorf("got reason %q invalid=%v, want %q invalid=true", f.Reason(), f.InvalidToken, reason)
	}
	if f.Status != http.StatusUnauthorized || f.Message != refusal.MessageUnauthenticated {
		t.Errorf("Status, Message = %d, %q; want 401, %q", f.Status, f.Message, refusal.MessageUnauthenticated)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		if len(token) >= 4 && strings.Contains(s, token) {
			t.Errorf("error text %q contains the token", s)
		}
		for _, part := range strings.Split(token, ".") {
			if len(part) >= 8 && strings.Contains(s, part) {
				t.Errorf("error text %q contains a token part", s)
			}
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
