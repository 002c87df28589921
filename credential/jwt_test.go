package credential

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
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

// jtCheckFailure asserts err is an invalid-token *Failure with reason, and
// that no rendering of it carries the token or any of its parts.
func jtCheckFailure(t *testing.T, err error, reason, token string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Verify succeeded, want %s", reason)
	}
	f, ok := AsFailure(err)
	if !ok {
		t.Fatalf("error %T %v is not a *Failure", err, err)
	}
	if f.Reason != reason || !f.InvalidToken {
		t.Errorf("got reason %q invalid=%v, want %q invalid=true", f.Reason, f.InvalidToken, reason)
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

func TestJWTVerify(t *testing.T) {
	k := jtKeys()
	jwks := jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "RS256"), jtPublic(k.ec1, "ec-1", ""))
	srv := newJTServer(t, jwks)
	v := newJTVerifier(t, JWTConfig{
		JWKSURL:            srv.URL,
		RequiredClaims:     []string{"sub"},
		RefreshInterval:    time.Hour,
		MinRefreshInterval: time.Hour,
	})

	// An attacker-controlled server that no token header may make us call.
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write(jtJWKS(t, jtPublic(k.rsaOther, "evil", "")))
	}))
	defer attacker.Close()

	rs := func(mod func(map[string]any)) string {
		return jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(mod), nil)
	}
	now := time.Now()

	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	valid := rs(nil)
	parts := strings.Split(valid, ".")
	altered := parts[0] + "." + jtB64JSON(t, jtClaims(func(m map[string]any) { m["sub"] = "admin" })) + "." + parts[2]
	truncatedSig := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-8]

	randPart := func(n int) string {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}

	cases := []struct {
		name   string
		token  string
		reason string // "" means valid
	}{
		{"valid RS256", valid, ""},
		{"valid ES256", jtSign(t, jose.ES256, k.ec1, "ec-1", jtClaims(nil), nil), ""},
		{"expired", rs(func(m map[string]any) { m["exp"] = now.Add(-2 * time.Minute).Unix() }), "token_expired"},
		{"expired within leeway", rs(func(m map[string]any) { m["exp"] = now.Add(-10 * time.Second).Unix() }), ""},
		{"not yet valid", rs(func(m map[string]any) { m["nbf"] = now.Add(2 * time.Minute).Unix() }), "token_not_yet_valid"},
		{"nbf within leeway", rs(func(m map[string]any) { m["nbf"] = now.Add(10 * time.Second).Unix() }), ""},
		{"iat in the future", rs(func(m map[string]any) {
			m["iat"] = now.Add(2 * time.Minute).Unix()
			delete(m, "nbf")
		}), "token_issued_in_future"},
		{"wrong issuer", rs(func(m map[string]any) { m["iss"] = "https://evil.example" }), "wrong_issuer"},
		{"issuer differs in case", rs(func(m map[string]any) { m["iss"] = strings.ToUpper(jtIssuer) }), "wrong_issuer"},
		{"issuer under another name case", rs(func(m map[string]any) {
			delete(m, "iss")
			m["Iss"] = jtIssuer
		}), "wrong_issuer"},
		{"no issuer", rs(func(m map[string]any) { delete(m, "iss") }), "wrong_issuer"},
		{"wrong audience", rs(func(m map[string]any) { m["aud"] = "other-app" }), "wrong_audience"},
		{"no audience", rs(func(m map[string]any) { delete(m, "aud") }), "wrong_audience"},
		{"audience list with ours", rs(func(m map[string]any) { m["aud"] = []string{"other-app", jtAudience} }), ""},
		{"audience list without ours", rs(func(m map[string]any) { m["aud"] = []string{"a", "b"} }), "wrong_audience"},
		{"missing required claim", rs(func(m map[string]any) { delete(m, "sub") }), "missing_claim"},
		{"null required claim", rs(func(m map[string]any) { m["sub"] = nil }), "missing_claim"},
		{"missing exp", rs(func(m map[string]any) { delete(m, "exp") }), "missing_claim"},
		{"exp not a number", rs(func(m map[string]any) { m["exp"] = "tomorrow" }), "token_malformed"},
		{"alg none", jtB64(`{"alg":"none","typ":"JWT"}`) + "." + jtB64JSON(t, jtClaims(nil)) + ".", "alg_not_allowed"},
		{"alg none with kid", jtB64(`{"alg":"none","kid":"rsa-1"}`) + "." + jtB64JSON(t, jtClaims(nil)) + ".", "alg_not_allowed"},
		{"HS256 with the RSA public key as secret", jtSign(t, jose.HS256, pubPEM, "rsa-1", jtClaims(nil), nil), "alg_not_allowed"},
		{"RS384 not allowed", jtSign(t, jose.RS384, k.rsa1, "rsa-1", jtClaims(nil), nil), "alg_not_allowed"},
		{"token of 20 KB", rs(func(m map[string]any) { m["pad"] = strings.Repeat("a", 20<<10) }), "token_too_large"},
		{"empty", "", "token_malformed"},
		{"x", "x", "token_malformed"},
		{"a.b.c", "a.b.c", "token_malformed"},
		{"dots", "..", "token_malformed"},
		{"two parts", parts[0] + "." + parts[1], "token_malformed"},
		{"four parts", valid + ".AAAA", "token_malformed"},
		{"random base64", randPart(30) + "." + randPart(60) + "." + randPart(256), "token_malformed"},
		{"header without alg", jtB64(`{"typ":"JWT","kid":"rsa-1"}`) + "." + parts[1] + "." + parts[2], "token_malformed"},
		{"header not JSON", jtB64(`{"alg":"RS256"`) + "." + parts[1] + "." + parts[2], "token_malformed"},
		{"payload not JSON", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte("not json"), nil), "token_malformed"},
		{"payload an array", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte(`["iss"]`), nil), "token_malformed"},
		{"payload null", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte(`null`), nil), "token_malformed"},
		{"duplicate claim", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte(fmt.Sprintf(
			`{"iss":"https://evil.example","iss":%q,"aud":%q,"sub":"x","exp":%d}`, jtIssuer, jtAudience, now.Add(time.Minute).Unix())), nil), "token_malformed"},
		{"payload altered after signing", altered, "bad_signature"},
		{"signature truncated", truncatedSig, "bad_signature"},
		{"signature from another token", parts[0] + "." + parts[1] + "." + strings.Split(rs(func(m map[string]any) { m["sub"] = "y" }), ".")[2], "bad_signature"},
		{"another issuer's key with our kid", jtSign(t, jose.RS256, k.rsaOther, "rsa-1", jtClaims(nil), nil), "bad_signature"},
		{"another EC key with our kid", jtSign(t, jose.ES256, k.ecOther, "ec-1", jtClaims(nil), nil), "bad_signature"},
		{"unknown kid", jtSign(t, jose.RS256, k.rsa1, "rsa-9", jtClaims(nil), nil), "unknown_kid"},
		{"kid of a key of another type", jtSign(t, jose.RS256, k.rsa1, "ec-1", jtClaims(nil), nil), "unknown_kid"},
		{"ES256 with an RSA kid", jtSign(t, jose.ES256, k.ec1, "rsa-1", jtClaims(nil), nil), "unknown_kid"},
		{"no kid with two keys", jtSign(t, jose.RS256, k.rsa1, "", jtClaims(nil), nil), "unknown_kid"},
		{"jku header is not followed", jtSign(t, jose.RS256, k.rsaOther, "evil", jtClaims(nil),
			(&jose.SignerOptions{}).WithHeader("jku", attacker.URL)), "unknown_kid"},
		{"x5u header is not followed", jtSign(t, jose.RS256, k.rsaOther, "evil", jtClaims(nil),
			(&jose.SignerOptions{}).WithHeader("x5u", attacker.URL)), "unknown_kid"},
		{"embedded jwk is not trusted", jtSign(t, jose.RS256, k.rsaOther, "", jtClaims(nil),
			&jose.SignerOptions{EmbedJWK: true}), "unknown_kid"},
		{"unsupported crit header", jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil),
			(&jose.SignerOptions{}).WithHeader("crit", []string{"exp"}).WithHeader("exp", 1)), "token_malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), tc.token)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims["iss"] != jtIssuer {
					t.Errorf("iss = %v", claims["iss"])
				}
				return
			}
			if claims != nil {
				t.Errorf("claims returned with an error: %v", claims)
			}
			jtCheckFailure(t, err, tc.reason, tc.token)
		})
	}
	if n := attackerHits.Load(); n != 0 {
		t.Errorf("a token header made the verifier call another server %d times", n)
	}
}

func TestJWTVerifyClaimsMap(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "RS256")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, Algorithms: []string{"RS256"},
		RequiredClaims: []string{jtSOPrefix + "associateid", jtSOPrefix + "ctx"}})
	exp := time.Now().Add(time.Hour).Unix()
	token := jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(func(m map[string]any) {
		m["exp"] = exp
		m[jtSOPrefix+"associateid"] = "5"
		m[jtSOPrefix+"ctx"] = "Cust12345"
		m[jtSOPrefix+"is_administrator"] = "False"
		m["big"] = int64(9007199254740993) // 2^53+1: lost by float64
		m["nested"] = map[string]any{"n": 1.5, "list": []any{1, "two", nil, true}}
	}), nil)
	claims, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"associateid": "5", "ctx": "Cust12345", "is_administrator": "False"} {
		if got, ok := claims[jtSOPrefix+name].(string); !ok || got != want {
			t.Errorf("%s = %#v, want string %q", name, claims[jtSOPrefix+name], want)
		}
	}
	if got, ok := claims["exp"].(json.Number); !ok || got.String() != fmt.Sprint(exp) {
		t.Errorf("exp = %#v (%T), want json.Number %d", claims["exp"], claims["exp"], exp)
	}
	if got, ok := claims["big"].(json.Number); !ok || got != "9007199254740993" {
		t.Errorf("big = %#v (%T)", claims["big"], claims["big"])
	}
	nested, _ := claims["nested"].(map[string]any)
	if got, ok := nested["n"].(json.Number); !ok || got != "1.5" {
		t.Errorf("nested.n = %#v (%T)", nested["n"], nested["n"])
	}
	list, _ := nested["list"].([]any)
	if len(list) != 4 || list[0] != json.Number("1") || list[1] != "two" || list[2] != nil || list[3] != true {
		t.Errorf("nested.list = %#v", list)
	}
	if aud, ok := claims["aud"].(string); !ok || aud != jtAudience {
		t.Errorf("aud = %#v", claims["aud"])
	}
	// The map is the caller's: a second verification must not share it.
	claims["sub"] = "changed"
	again, err := v.Verify(context.Background(), token)
	if err != nil || again["sub"] != "bot-1" {
		t.Errorf("second Verify: %v, sub = %v", err, again["sub"])
	}
}

func TestJWTVerifyFromFile(t *testing.T) {
	k := jtKeys()
	dir := t.TempDir()
	one := filepath.Join(dir, "one.json")
	if err := os.WriteFile(one, jtJWKS(t, jtPublic(k.ec1, "ec-1", "ES256")), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newJTVerifier(t, JWTConfig{JWKSFile: one})
	for name, token := range map[string]string{
		"with kid":    jtSign(t, jose.ES256, k.ec1, "ec-1", jtClaims(nil), nil),
		"without kid": jtSign(t, jose.ES256, k.ec1, "", jtClaims(nil), nil),
	} {
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The only key still has to fit the alg and verify the signature.
	token := jtSign(t, jose.ES256, k.ecOther, "", jtClaims(nil), nil)
	_, err := v.Verify(context.Background(), token)
	jtCheckFailure(t, err, "bad_signature", token)
	token = jtSign(t, jose.RS256, k.rsa1, "", jtClaims(nil), nil)
	_, err = v.Verify(context.Background(), token)
	jtCheckFailure(t, err, "unknown_kid", token)
	// A file-based set is never refreshed: an unknown kid is just unknown.
	token = jtSign(t, jose.ES256, k.ec1, "ec-2", jtClaims(nil), nil)
	_, err = v.Verify(context.Background(), token)
	jtCheckFailure(t, err, "unknown_kid", token)

	// Keys the verifier cannot use are skipped, not fatal.
	mixed := filepath.Join(dir, "mixed.json")
	doc := fmt.Sprintf(`{"keys":[{"kty":"XYZ","kid":"future"},{"kty":"oct","kid":"hmac","k":%q},%s,%s]}`,
		jtB64("0123456789abcdef0123456789abcdef"),
		mustJSON(t, jose.JSONWebKey{Key: &k.rsa2.PublicKey, KeyID: "enc-1", Use: "enc"}),
		mustJSON(t, jtPublic(k.rsa1, "rsa-1", "")))
	if err := os.WriteFile(mixed, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	v2 := newJTVerifier(t, JWTConfig{JWKSFile: mixed})
	if n := len(v2.keys.Load().set.Keys); n != 1 {
		t.Errorf("usable keys = %d, want 1", n)
	}
	if _, err := v2.Verify(context.Background(), jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)); err != nil {
		t.Error(err)
	}
	token = jtSign(t, jose.RS256, k.rsa2, "enc-1", jtClaims(nil), nil)
	_, err = v2.Verify(context.Background(), token)
	jtCheckFailure(t, err, "unknown_kid", token)
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJWTVerifyKeyAlgPinned(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "RS256")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, Algorithms: []string{"RS256", "PS256"}, MinRefreshInterval: time.Hour})
	// The key says RS256, so a PS256 signature by the same key is refused.
	token := jtSign(t, jose.PS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	_, err := v.Verify(context.Background(), token)
	jtCheckFailure(t, err, "unknown_kid", token)
}

func TestJWTMaxTokenBytes(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.ec1, "ec-1", "")))
	token := jtSign(t, jose.ES256, k.ec1, "ec-1", jtClaims(nil), nil)
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, MaxTokenBytes: len(token)})
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Errorf("token at the limit: %v", err)
	}
	v = newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, MaxTokenBytes: len(token) - 1})
	_, err := v.Verify(context.Background(), token)
	jtCheckFailure(t, err, "token_too_large", token)
}

func TestJWTUnknownKIDRefresh(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("hits after start = %d, want 1", n)
	}
	ctx := context.Background()

	// The issuer rotates to a new key; the first token with its kid
	// triggers one refresh and verifies.
	srv.set(jtJWKS(t, jtPublic(k.rsa1, "rsa-1", ""), jtPublic(k.rsa2, "rsa-2", "")))
	if _, err := v.Verify(ctx, jtSign(t, jose.RS256, k.rsa2, "rsa-2", jtClaims(nil), nil)); err != nil {
		t.Fatalf("token with the rotated-in kid: %v", err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits after the unknown kid = %d, want 2", n)
	}
	// Known kids never fetch.
	for range 5 {
		if _, err := v.Verify(ctx, jtSign(t, jose.RS256, k.rsa2, "rsa-2", jtClaims(nil), nil)); err != nil {
			t.Fatal(err)
		}
	}
	// A second unknown kid within MinRefreshInterval does not refetch,
	// even though the server now has it.
	srv.set(jtJWKS(t, jtPublic(k.rsa1, "rsa-1", ""), jtPublic(k.ec1, "ec-3", "")))
	for range 5 {
		token := jtSign(t, jose.ES256, k.ec1, "ec-3", jtClaims(nil), nil)
		_, err := v.Verify(ctx, token)
		jtCheckFailure(t, err, "unknown_kid", token)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits after rate-limited unknown kids = %d, want 2", n)
	}
}

func TestJWTUnknownKIDRefreshAfterInterval(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: time.Hour, MinRefreshInterval: 150 * time.Millisecond})
	ctx := context.Background()
	token := jtSign(t, jose.RS256, k.rsa2, "rsa-2", jtClaims(nil), nil)
	_, err := v.Verify(ctx, token)
	jtCheckFailure(t, err, "unknown_kid", token) // fetched, still unknown
	srv.set(jtJWKS(t, jtPublic(k.rsa2, "rsa-2", "")))
	_, err = v.Verify(ctx, token)
	jtCheckFailure(t, err, "unknown_kid", token) // rate-limited
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("hits = %d, want 2", n)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("hits = %d, want 3", n)
	}
	// The rotated-out key is gone.
	token = jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	_, err = v.Verify(ctx, token)
	jtCheckFailure(t, err, "unknown_kid", token)
}

func TestJWTUnknownKIDBurstFetchesOnce(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: time.Hour, MinRefreshInterval: time.Hour})
	srv.set(jtJWKS(t, jtPublic(k.rsa2, "rsa-2", "")))
	token := jtSign(t, jose.RS256, k.rsa2, "rsa-2", jtClaims(nil), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), token); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Errorf("hits = %d, want 2 (one start, one refresh)", n)
	}
}

func TestJWTPeriodicRefresh(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: 100 * time.Millisecond, MinRefreshInterval: time.Hour})
	srv.set(jtJWKS(t, jtPublic(k.rsa1, "rsa-1", ""), jtPublic(k.ec1, "ec-2", "")))

	// Wait for the periodic refresh to bring the new key in, without
	// presenting a token that would trigger an unknown-kid refresh.
	deadline := time.Now().Add(time.Second)
	for v.keys.Load().byKID["ec-2"] == nil {
		if time.Now().After(deadline) {
			t.Fatal("new key not loaded within a second")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := v.Verify(context.Background(), jtSign(t, jose.ES256, k.ec1, "ec-2", jtClaims(nil), nil)); err != nil {
		t.Fatalf("new-kid token: %v", err)
	}
	v.fetchSem <- struct{}{}
	onDemand := v.lastOnDemand
	<-v.fetchSem
	if !onDemand.IsZero() {
		t.Error("an unknown-kid refresh happened; the periodic one should have sufficed")
	}
}

func TestJWTRefreshFailureKeepsKeys(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: 10 * time.Millisecond})
	token := jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	for _, broken := range []func(){
		func() { srv.status.Store(http.StatusInternalServerError) },
		func() { srv.status.Store(http.StatusOK); srv.set([]byte("<html>maintenance</html>")) },
		func() { srv.set([]byte(`{"keys":[]}`)) },
	} {
		broken()
		start := srv.hits.Load()
		for srv.hits.Load() < start+3 {
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatalf("after failed refreshes: %v", err)
		}
	}
}

func TestJWTCloseStopsRefresh(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	v, err := NewJWTVerifier(context.Background(), JWTConfig{Issuer: jtIssuer, Audiences: []string{jtAudience},
		JWKSURL: srv.URL, RefreshInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for srv.hits.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	v.Close()
	v.Close() // idempotent
	after := srv.hits.Load()
	time.Sleep(150 * time.Millisecond)
	if n := srv.hits.Load(); n != after {
		t.Errorf("hits grew from %d to %d after Close", after, n)
	}
	select {
	case <-v.done:
	default:
		t.Error("refresh goroutine still running after Close")
	}
	// Verification with the loaded keys still works after Close.
	if _, err := v.Verify(context.Background(), jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)); err != nil {
		t.Error(err)
	}
}

func TestJWTCloseOnFileVerifier(t *testing.T) {
	k := jtKeys()
	f := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(f, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newJTVerifier(t, JWTConfig{JWKSFile: f})
	v.Close()
	v.Close()
}

func TestJWTStartContextOnlyBoundsFirstLoad(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	ctx, cancel := context.WithCancel(context.Background())
	v, err := NewJWTVerifier(ctx, JWTConfig{Issuer: jtIssuer, Audiences: []string{jtAudience},
		JWKSURL: srv.URL, RefreshInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cancel()
	start := srv.hits.Load()
	deadline := time.Now().Add(time.Second)
	for srv.hits.Load() < start+2 {
		if time.Now().After(deadline) {
			t.Fatal("refresh stopped when the start context was cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJWTConcurrentVerifyDuringRefresh(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", ""), jtPublic(k.ec1, "ec-1", "")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, RefreshInterval: time.Millisecond, MinRefreshInterval: time.Millisecond})
	good := jtSign(t, jose.ES256, k.ec1, "ec-1", jtClaims(nil), nil)
	unknown := jtSign(t, jose.ES256, k.ec1, "ec-9", jtClaims(nil), nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := v.Verify(context.Background(), good); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if _, err := v.Verify(context.Background(), unknown); err == nil {
						t.Error("unknown kid verified")
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestNewJWTVerifierConfig(t *testing.T) {
	k := jtKeys()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", string(jtJWKS(t, jtPublic(k.rsa1, "rsa-1", ""))))
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	notFound := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	notFound.status.Store(http.StatusNotFound)
	huge := newJTServer(t, []byte(`{"keys":[],"pad":"`+strings.Repeat("a", 1<<20)+`"}`))
	html := newJTServer(t, []byte("<html></html>"))
	redirect := httptest.NewServer(http.RedirectHandler(notFound.URL, http.StatusFound))
	defer redirect.Close()

	base := func(mod func(*JWTConfig)) JWTConfig {
		c := JWTConfig{Issuer: jtIssuer, Audiences: []string{jtAudience}, JWKSFile: good}
		mod(&c)
		return c
	}
	cases := []struct {
		name string
		cfg  JWTConfig
		want string // substring of the error
	}{
		{"no issuer", base(func(c *JWTConfig) { c.Issuer = "" }), "issuer"},
		{"no audience", base(func(c *JWTConfig) { c.Audiences = nil }), "audience"},
		{"empty audience", base(func(c *JWTConfig) { c.Audiences = []string{""} }), "audience"},
		{"both sources", base(func(c *JWTConfig) { c.JWKSURL = "https://example.com/jwks" }), "not both"},
		{"no source", base(func(c *JWTConfig) { c.JWKSFile = "" }), "required"},
		{"alg none", base(func(c *JWTConfig) { c.Algorithms = []string{"none"} }), "refused"},
		{"alg HS256", base(func(c *JWTConfig) { c.Algorithms = []string{"RS256", "HS256"} }), "refused"},
		{"alg HS512", base(func(c *JWTConfig) { c.Algorithms = []string{"HS512"} }), "refused"},
		{"unknown alg", base(func(c *JWTConfig) { c.Algorithms = []string{"RS257"} }), "unknown algorithm"},
		{"alg in lower case", base(func(c *JWTConfig) { c.Algorithms = []string{"rs256"} }), "unknown algorithm"},
		{"leeway too large", base(func(c *JWTConfig) { c.Leeway = 6 * time.Minute }), "leeway"},
		{"negative leeway", base(func(c *JWTConfig) { c.Leeway = -time.Second }), "leeway"},
		{"negative max token bytes", base(func(c *JWTConfig) { c.MaxTokenBytes = -1 }), "max token"},
		{"negative refresh", base(func(c *JWTConfig) { c.RefreshInterval = -time.Second }), "refresh"},
		{"negative min refresh", base(func(c *JWTConfig) { c.MinRefreshInterval = -time.Second }), "refresh"},
		{"empty required claim", base(func(c *JWTConfig) { c.RequiredClaims = []string{""} }), "claim"},
		{"JWKS file missing", base(func(c *JWTConfig) { c.JWKSFile = filepath.Join(dir, "nope.json") }), "reading JWKS file"},
		{"JWKS file not JSON", base(func(c *JWTConfig) { c.JWKSFile = write("bad.json", "{") }), "not a JWKS"},
		{"JWKS file without keys", base(func(c *JWTConfig) { c.JWKSFile = write("empty.json", `{"keys":[]}`) }), "no usable"},
		{"JWKS file with a symmetric key only", base(func(c *JWTConfig) {
			c.JWKSFile = write("oct.json", `{"keys":[{"kty":"oct","k":"`+jtB64("0123456789abcdef0123456789abcdef")+`"}]}`)
		}), "no usable"},
		{"JWKS file with a private key", base(func(c *JWTConfig) {
			c.JWKSFile = write("private.json", `{"keys":[`+mustJSON(t, jose.JSONWebKey{Key: k.rsa1, KeyID: "rsa-1"})+`]}`)
		}), "private"},
		{"JWKS file with a short RSA key", base(func(c *JWTConfig) {
			c.JWKSFile = write("short.json", string(jtJWKS(t, jtPublic(small, "short", ""))))
		}), "no usable"},
		{"JWKS URL down", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = downURL }), "fetching JWKS"},
		{"JWKS URL 404", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = notFound.URL }), "status 404"},
		{"JWKS URL redirecting to a 404", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = redirect.URL }), "status 404"},
		{"JWKS URL too large", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = huge.URL }), "larger than"},
		{"JWKS URL not JSON", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = html.URL }), "not a JWKS"},
		{"JWKS URL ftp", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = "ftp://example.com/jwks" }), "http or https"},
		{"JWKS URL relative", base(func(c *JWTConfig) { c.JWKSFile = ""; c.JWKSURL = "/jwks.json" }), "http or https"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewJWTVerifier(context.Background(), tc.cfg)
			if err == nil {
				v.Close()
				t.Fatalf("NewJWTVerifier succeeded, want an error with %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}

	// Defaults.
	v := newJTVerifier(t, JWTConfig{JWKSFile: good})
	if v.leeway != 30*time.Second || v.maxBytes != 8192 || v.minRefresh != 30*time.Second ||
		len(v.algs) != 2 || v.algs[0] != jose.RS256 || v.algs[1] != jose.ES256 {
		t.Errorf("defaults: leeway %s, max %d, min refresh %s, algs %v", v.leeway, v.maxBytes, v.minRefresh, v.algs)
	}
	// The JWKS URL's user info does not reach error text.
	_, err = NewJWTVerifier(context.Background(), JWTConfig{Issuer: jtIssuer, Audiences: []string{jtAudience},
		JWKSURL: strings.Replace(notFound.URL, "http://", "http://user:hunter2@", 1)})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v", err)
	}
}

func TestJWKSNoDowngradeRedirect(t *testing.T) {
	req := func(s string) *http.Request {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: u}
	}
	if err := noDowngrade(req("http://idp.example/jwks"), []*http.Request{req("https://idp.example/jwks")}); err == nil {
		t.Error("https to http redirect allowed")
	}
	if err := noDowngrade(req("https://cdn.example/jwks"), []*http.Request{req("https://idp.example/jwks")}); err != nil {
		t.Errorf("https to https redirect refused: %v", err)
	}
	if err := noDowngrade(req("https://cdn.example/jwks"), []*http.Request{req("http://idp.example/jwks")}); err != nil {
		t.Errorf("http to https redirect refused: %v", err)
	}
}

func benchmarkJWTVerify(b *testing.B, alg jose.SignatureAlgorithm, priv any, kid string) {
	f := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(f, jtJWKS(b, jtPublic(priv, kid, string(alg))), 0o600); err != nil {
		b.Fatal(err)
	}
	v := newJTVerifier(b, JWTConfig{JWKSFile: f, Algorithms: []string{string(alg)}})
	token := jtSign(b, alg, priv, kid, jtClaims(func(m map[string]any) {
		m[jtSOPrefix+"associateid"] = "5"
		m[jtSOPrefix+"ctx"] = "Cust12345"
		m["exp"] = time.Now().Add(time.Hour).Unix()
	}), nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTVerifyRS256(b *testing.B) {
	benchmarkJWTVerify(b, jose.RS256, jtKeys().rsa1, "rsa-1")
}

func BenchmarkJWTVerifyES256(b *testing.B) {
	benchmarkJWTVerify(b, jose.ES256, jtKeys().ec1, "ec-1")
}
