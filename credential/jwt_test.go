package credential

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jtCase is one token for Verify and the reason it must be refused with
// ("" when it must verify).
type jtCase struct {
	name   string
	token  string
	reason string
}

// jtFixture is what the Verify cases are made from: the issuer's keys, a
// valid token and its parts, and the URL of an attacker's key server that
// no token header may make the verifier call.
type jtFixture struct {
	t        *testing.T
	k        jtKeySet
	now      time.Time
	valid    string
	parts    []string
	attacker string
}

func newJTFixture(t *testing.T, attacker string) *jtFixture {
	f := &jtFixture{t: t, k: jtKeys(), now: time.Now(), attacker: attacker}
	f.valid = f.rs(nil)
	f.parts = strings.Split(f.valid, ".")
	return f
}

// rs signs valid claims, spoiled by mod, with the issuer's RS256 key.
func (f *jtFixture) rs(mod func(map[string]any)) string {
	return jtSign(f.t, jose.RS256, f.k.rsa1, "rsa-1", jtClaims(mod), nil)
}

// jtRandPart is n random bytes, base64url-encoded: a token part of the
// right alphabet and no meaning.
func jtRandPart(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// claimCases: the time, issuer, audience and required claims.
func (f *jtFixture) claimCases() []jtCase {
	t, k, now, rs, valid := f.t, f.k, f.now, f.rs, f.valid
	return []jtCase{
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
	}
}

// algCases: the "alg" allow-list and the size bound, checked before any key.
func (f *jtFixture) algCases() []jtCase {
	t, k, rs := f.t, f.k, f.rs
	pubDER, err := x509.MarshalPKIXPublicKey(&k.rsa1.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return []jtCase{
		{"alg none", jtB64(`{"alg":"none","typ":"JWT"}`) + "." + jtB64JSON(t, jtClaims(nil)) + ".", "alg_not_allowed"},
		{"alg none with kid", jtB64(`{"alg":"none","kid":"rsa-1"}`) + "." + jtB64JSON(t, jtClaims(nil)) + ".", "alg_not_allowed"},
		{"HS256 with the RSA public key as secret", jtSign(t, jose.HS256, pubPEM, "rsa-1", jtClaims(nil), nil), "alg_not_allowed"},
		{"RS384 not allowed", jtSign(t, jose.RS384, k.rsa1, "rsa-1", jtClaims(nil), nil), "alg_not_allowed"},
		{"token of 20 KB", rs(func(m map[string]any) { m["pad"] = strings.Repeat("a", 20<<10) }), "token_too_large"},
	}
}

// malformedCases: tokens that are not a JWS with a claims object.
func (f *jtFixture) malformedCases() []jtCase {
	t, k, now, valid, parts := f.t, f.k, f.now, f.valid, f.parts
	return []jtCase{
		{"empty", "", "token_malformed"},
		{"x", "x", "token_malformed"},
		{"a.b.c", "a.b.c", "token_malformed"},
		{"dots", "..", "token_malformed"},
		{"two parts", parts[0] + "." + parts[1], "token_malformed"},
		{"four parts", valid + ".AAAA", "token_malformed"},
		{"random base64", jtRandPart(30) + "." + jtRandPart(60) + "." + jtRandPart(256), "token_malformed"},
		{"header without alg", jtB64(`{"typ":"JWT","kid":"rsa-1"}`) + "." + parts[1] + "." + parts[2], "token_malformed"},
		{"header not JSON", jtB64(`{"alg":"RS256"`) + "." + parts[1] + "." + parts[2], "token_malformed"},
		{"payload not JSON", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte("not json"), nil), "token_malformed"},
		{"payload an array", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte(`["iss"]`), nil), "token_malformed"},
		{"payload null", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte(`null`), nil), "token_malformed"},
		{"duplicate claim", jtSign(t, jose.RS256, k.rsa1, "rsa-1", []byte(fmt.Sprintf(
			`{"iss":"https://evil.example","iss":%q,"aud":%q,"sub":"x","exp":%d}`, jtIssuer, jtAudience, now.Add(time.Minute).Unix())), nil), "token_malformed"},
	}
}

// keyCases: signatures and the choice of key, which no token header may
// steer to a key the issuer did not publish.
func (f *jtFixture) keyCases() []jtCase {
	t, k, rs, parts := f.t, f.k, f.rs, f.parts
	altered := parts[0] + "." + jtB64JSON(t, jtClaims(func(m map[string]any) { m["sub"] = "admin" })) + "." + parts[2]
	truncatedSig := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-8]
	return []jtCase{
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
			(&jose.SignerOptions{}).WithHeader("jku", f.attacker)), "unknown_kid"},
		{"x5u header is not followed", jtSign(t, jose.RS256, k.rsaOther, "evil", jtClaims(nil),
			(&jose.SignerOptions{}).WithHeader("x5u", f.attacker)), "unknown_kid"},
		{"embedded jwk is not trusted", jtSign(t, jose.RS256, k.rsaOther, "", jtClaims(nil),
			&jose.SignerOptions{EmbedJWK: true}), "unknown_kid"},
		{"unsupported crit header", jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil),
			(&jose.SignerOptions{}).WithHeader("crit", []string{"exp"}).WithHeader("exp", 1)), "token_malformed"},
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
	var attackerHits atomic.Int64
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		_, _ = w.Write(jtJWKS(t, jtPublic(k.rsaOther, "evil", "")))
	}))
	defer attacker.Close()

	f := newJTFixture(t, attacker.URL)
	for _, tc := range slices.Concat(f.claimCases(), f.algCases(), f.malformedCases(), f.keyCases()) {
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
			jtCheckRefusal(t, err, tc.reason, tc.token)
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
	jtCheckRefusal(t, err, "bad_signature", token)
	token = jtSign(t, jose.RS256, k.rsa1, "", jtClaims(nil), nil)
	_, err = v.Verify(context.Background(), token)
	jtCheckRefusal(t, err, "unknown_kid", token)
	// A file-based set is never refreshed: an unknown kid is just unknown.
	token = jtSign(t, jose.ES256, k.ec1, "ec-2", jtClaims(nil), nil)
	_, err = v.Verify(context.Background(), token)
	jtCheckRefusal(t, err, "unknown_kid", token)

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
	jtCheckRefusal(t, err, "unknown_kid", token)
}

func TestJWTVerifyKeyAlgPinned(t *testing.T) {
	k := jtKeys()
	srv := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "RS256")))
	v := newJTVerifier(t, JWTConfig{JWKSURL: srv.URL, Algorithms: []string{"RS256", "PS256"}, MinRefreshInterval: time.Hour})
	// The key says RS256, so a PS256 signature by the same key is refused.
	token := jtSign(t, jose.PS256, k.rsa1, "rsa-1", jtClaims(nil), nil)
	_, err := v.Verify(context.Background(), token)
	jtCheckRefusal(t, err, "unknown_kid", token)
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
	jtCheckRefusal(t, err, "token_too_large", token)
}

// benchmarkJWTVerify verifies one bot token over and over, as a gateway
// does for a bot that keeps its token; cacheTTL -1 measures the uncached
// verification.
func benchmarkJWTVerify(b *testing.B, alg jose.SignatureAlgorithm, priv any, kid string, cacheTTL time.Duration) {
	f := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(f, jtJWKS(b, jtPublic(priv, kid, string(alg))), 0o600); err != nil {
		b.Fatal(err)
	}
	v := newJTVerifier(b, JWTConfig{JWKSFile: f, Algorithms: []string{string(alg)}, CacheTTL: cacheTTL})
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

// BenchmarkJWTVerifyRS256 and BenchmarkJWTVerifyES256 are the uncached
// verification (cache disabled), the baseline of BenchmarkJWTVerifyCached.
func BenchmarkJWTVerifyRS256(b *testing.B) {
	benchmarkJWTVerify(b, jose.RS256, jtKeys().rsa1, "rsa-1", -1)
}

func BenchmarkJWTVerifyES256(b *testing.B) {
	benchmarkJWTVerify(b, jose.ES256, jtKeys().ec1, "ec-1", -1)
}

// BenchmarkJWTVerifyCached is the same token answered from the cache
// after its first verification.
func BenchmarkJWTVerifyCached(b *testing.B) {
	b.Run("RS256", func(b *testing.B) { benchmarkJWTVerify(b, jose.RS256, jtKeys().rsa1, "rsa-1", 0) })
	b.Run("ES256", func(b *testing.B) { benchmarkJWTVerify(b, jose.ES256, jtKeys().ec1, "ec-1", 0) })
}
