package resetguard_test

// Identity integration: a real Caddy verifies JWTs against a JWKS served on
// loopback, and asks the stand-in backend who SoTicket callers are. The
// gateway itself is started by startGateway (integration_test.go), which
// includes the two sites configured here.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	jwtURL     = "http://localhost:9087"
	lookupPURL = "http://localhost:9088"
	issuer     = "https://idp.test"
	audience   = "resetguard-gateway"
)

// identityFixture holds the keys the test generates and the JWKS it serves.
type identityFixture struct {
	rsaKey, rotatedKey *rsa.PrivateKey
	ecKey              *ecdsa.PrivateKey
	jwks               *httptest.Server
	mu                 sync.Mutex
	keys               []jose.JSONWebKey
	principalCalls     atomic.Int64
}

func newIdentityFixture(t *testing.T) *identityFixture {
	t.Helper()
	f := &identityFixture{}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.rotatedKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if f.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	f.keys = []jose.JSONWebKey{
		{Key: &f.rsaKey.PublicKey, KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: &f.ecKey.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}
	f.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		set := jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), f.keys...)}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	return f
}

// rotate publishes the rotated key, as an issuer rolling its keys would.
func (f *identityFixture) rotate() {
	f.mu.Lock()
	f.keys = append(f.keys, jose.JSONWebKey{Key: &f.rotatedKey.PublicKey, KeyID: "rsa-2", Algorithm: "RS256", Use: "sig"})
	f.mu.Unlock()
}

// sites returns the Caddyfile sites of the identity tests.
func (f *identityFixture) sites(upstream, backendURL string) string {
	policyDir, _ := filepath.Abs("testdata/identity")
	return fmt.Sprintf(`
http://localhost:9087 {
	reset_guard {
		policy %[1]s {
			query data.resetguard.identity.decision
		}
		identity {
			jwt {
				issuer %[2]s
				audience %[3]s
				jwks_url %[4]s
				min_refresh 1s
			}
		}
	}
	reverse_proxy %[5]s
}
http://localhost:9088 {
	reset_guard {
		policy %[1]s {
			query data.resetguard.identity.decision
		}
		identity {
			principal_lookup %[6]s {
				timeout 1s
				ttl 1m
			}
		}
	}
	reverse_proxy %[5]s
}
`, policyDir, issuer, audience, f.jwks.URL, upstream, backendURL)
}

// servePrincipal is the stand-in's GET /api/v1/User/currentPrincipal.
func (f *identityFixture) servePrincipal(w http.ResponseWriter, r *http.Request) {
	f.principalCalls.Add(1)
	var carrier string
	switch r.Header.Get("Authorization") {
	case "SoTicket 7T:Ym90LXRpY2tldA==":
		carrier = `{"UserType": "SystemAssociate", "Associate": "SYSBOT", "AssociateId": 9, "RoleName": "Bots",
			"Licenses": ["chat"], "FunctionRights": ["chat-admin"], "UserName": "chatbot", "DatabaseContextIdentifier": "Cust12345",
			"FullName": "Chat Bot", "EMailAddress": "bot@example.com"}`
	case "SoTicket 7T:YWdlbnQtdGlja2V0":
		carrier = `{"UserType": "InternalAssociate", "Associate": "AGENT7", "AssociateId": 7, "UserName": "agent7"}`
	default:
		http.Error(w, `{"Error": true, "ErrorType": "SoAuthenticationException"}`, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, carrier)
}

type tokenSpec struct {
	key     any
	alg     jose.SignatureAlgorithm
	kid     string
	claims  map[string]any
	iss     string
	aud     string
	expires time.Duration
	nbf     time.Duration
}

func (f *identityFixture) token(t *testing.T, s tokenSpec) string {
	t.Helper()
	if s.key == nil {
		s.key, s.alg, s.kid = f.rsaKey, jose.RS256, "rsa-1"
	}
	if s.iss == "" {
		s.iss = issuer
	}
	if s.aud == "" {
		s.aud = audience
	}
	if s.expires == 0 {
		s.expires = 5 * time.Minute
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	std := jwt.Claims{Issuer: s.iss, Audience: jwt.Audience{s.aud}, Subject: "bot@cust12345",
		Expiry: jwt.NewNumericDate(now.Add(s.expires)), NotBefore: jwt.NewNumericDate(now.Add(s.nbf)), IssuedAt: jwt.NewNumericDate(now)}
	extra := map[string]any{
		"role": "bot",
		"http://schemes.superoffice.net/identity/associateid": "5",
		"http://schemes.superoffice.net/identity/ctx":         "Cust12345",
	}
	for k, v := range s.claims {
		extra[k] = v
	}
	tok, err := jwt.Signed(sig).Claims(std).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestIdentityJWT(t *testing.T) {
	g := startGateway(t)
	f := g.identity
	g.newAuditLines(t)

	pubDER, err := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	unsignedClaims := b64url([]byte(fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"x","role":"bot","exp":%d}`, issuer, audience, time.Now().Add(time.Hour).Unix())))
	noneToken := b64url([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + unsignedClaims + "."
	hsInput := b64url([]byte(`{"alg":"HS256","typ":"JWT","kid":"rsa-1"}`)) + "." + unsignedClaims
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	hsToken := hsInput + "." + b64url(mac.Sum(nil))

	tests := []struct {
		name       string
		token      func() string
		wantStatus int
		wantReason string
	}{
		{"valid RS256 bot", func() string { return f.token(t, tokenSpec{}) }, 200, ""},
		{"valid ES256 bot", func() string { return f.token(t, tokenSpec{key: f.ecKey, alg: jose.ES256, kid: "ec-1"}) }, 200, ""},
		{"valid token, not a bot", func() string { return f.token(t, tokenSpec{claims: map[string]any{"role": "agent"}}) }, 403, "not_a_bot"},
		{"expired", func() string { return f.token(t, tokenSpec{expires: -10 * time.Minute}) }, 401, "token_expired"},
		{"not yet valid", func() string { return f.token(t, tokenSpec{nbf: 10 * time.Minute, expires: time.Hour}) }, 401, "token_not_yet_valid"},
		{"wrong issuer", func() string { return f.token(t, tokenSpec{iss: "https://evil.test"}) }, 401, "wrong_issuer"},
		{"wrong audience", func() string { return f.token(t, tokenSpec{aud: "someone-else"}) }, 401, "wrong_audience"},
		{"alg none", func() string { return noneToken }, 401, ""},
		{"HS256 signed with the public key", func() string { return hsToken }, 401, ""},
		// Past the guard's max_token_bytes (8 KiB) but within Caddy's
		// 16 KiB header limit: refused by the guard.
		{"10 KB token", func() string {
			return f.token(t, tokenSpec{claims: map[string]any{"pad": strings.Repeat("x", 7<<10)}})
		}, 401, "token_too_large"},
		{"20 KB token", func() string {
			return f.token(t, tokenSpec{claims: map[string]any{"pad": strings.Repeat("x", 15<<10)}})
		}, 401, "token_too_large"},
		// Past Caddy's own header limit (max_header_size, 16 KiB plus
		// Go's slack): the server answers 431 before any handler runs,
		// so nothing reaches the backend.
		{"30 KB token", func() string {
			return f.token(t, tokenSpec{claims: map[string]any{"pad": strings.Repeat("x", 22<<10)}})
		}, 431, ""},
		{"garbage", func() string { return "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl" }, 401, ""},
		{"unknown kid, then the JWKS rotates", func() string {
			f.rotate()
			return f.token(t, tokenSpec{key: f.rotatedKey, alg: jose.RS256, kid: "rsa-2"})
		}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			req, err := http.NewRequest(http.MethodPost, jwtURL+"/Cust12345/api/v1/ChatSession/427/Reset", http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 401 && !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), "|"), `error="invalid_token"`) {
				t.Errorf("401 without invalid_token challenge: %q", resp.Header.Values("WWW-Authenticate"))
			}
			if tt.wantReason != "" && !strings.Contains(string(body), `"`+tt.wantReason+`"`) {
				t.Errorf("body %s lacks reason %s", body, tt.wantReason)
			}
			recs := g.newAuditLines(t)
			if tt.wantStatus == http.StatusRequestHeaderFieldsTooLarge {
				if len(recs) != 0 {
					t.Fatalf("%d audit records for a request the server refused before any handler", len(recs))
				}
				return
			}
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1", len(recs))
			}
			raw := recs[0]["_raw"].(string)
			if strings.Contains(raw, tok) || strings.Contains(string(body), tok) {
				t.Error("the token leaked into the audit record or the error body")
			}
			if tt.wantStatus == 200 {
				if field(recs[0], "resetguard.principal_source") != "jwt" || field(recs[0], "user.id") != "5" || field(recs[0], "user.domain") != "Cust12345" {
					t.Errorf("audit principal fields wrong: %s", raw)
				}
			}
		})
	}
}

func TestIdentityPrincipalLookup(t *testing.T) {
	g := startGateway(t)
	f := g.identity
	g.newAuditLines(t)
	send := func(ticket string) (int, []byte) {
		req, err := http.NewRequest(http.MethodPost, lookupPURL+"/Cust12345/api/v1/ChatSession/427/Reset", http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "SoTicket "+ticket)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, body
	}
	before := f.principalCalls.Load()
	for i := range 10 {
		if code, body := send("7T:Ym90LXRpY2tldA=="); code != 200 {
			t.Fatalf("bot request %d: %d %s", i, code, body)
		}
	}
	if calls := f.principalCalls.Load() - before; calls != 1 {
		t.Errorf("10 requests made %d principal lookups, want 1 (cached)", calls)
	}
	recs := g.newAuditLines(t)
	if len(recs) != 10 {
		t.Fatalf("%d audit records, want 10", len(recs))
	}
	if field(recs[0], "resetguard.principal_source") != "backend" || field(recs[0], "user.id") != "9" || field(recs[0], "user.name") != "chatbot" {
		t.Errorf("audit principal fields wrong: %s", recs[0]["_raw"])
	}
	if strings.Contains(recs[0]["_raw"].(string), "bot@example.com") {
		t.Error("the principal's e-mail reached the audit record")
	}

	if code, body := send("7T:YWdlbnQtdGlja2V0"); code != 403 || !strings.Contains(string(body), "not_a_bot") {
		t.Errorf("agent: %d %s, want 403 not_a_bot", code, body)
	}
	if code, body := send("7T:ZXhwaXJlZA=="); code != 401 || !strings.Contains(string(body), "principal_unauthenticated") {
		t.Errorf("unknown ticket: %d %s, want 401 principal_unauthenticated", code, body)
	}
	if n := len(g.newAuditLines(t)); n != 2 {
		t.Errorf("%d audit records for two refused requests, want 2", n)
	}
}
