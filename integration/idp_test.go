package integration_test

// The stand-in identity sources: an issuer's JWKS on loopback with keys
// the run generates (and can rotate), JWTs signed with them, and the
// backend's currentPrincipal answer for the tickets the suites use.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	issuer   = "https://idp.test"
	audience = "resetguard-gateway"
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

// tokenSpec is a JWT to mint; zero fields get a valid bot token's values.
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
