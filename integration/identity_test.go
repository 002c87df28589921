package integration_test

// Identity through the real gateway: JWTs verified against the stand-in
// issuer's JWKS (idp_test.go), and SoTicket callers identified by asking
// the stand-in backend, with the answer cached.

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

type jwtCase struct {
	name       string
	token      func() string
	wantStatus int
	wantReason string
}

// forgedTokens are an unsigned token (alg none) and one signed with HS256
// keyed by the issuer's public RSA key, as in the classic key-confusion
// attack.
func forgedTokens(t *testing.T, f *identityFixture) (none, hs256 string) {
	t.Helper()
	pubDER, err := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	unsignedClaims := b64url([]byte(fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"x","role":"bot","exp":%d}`, issuer, audience, time.Now().Add(time.Hour).Unix())))
	none = b64url([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + unsignedClaims + "."
	hsInput := b64url([]byte(`{"alg":"HS256","typ":"JWT","kid":"rsa-1"}`)) + "." + unsignedClaims
	mac := hmac.New(sha256.New, pubDER)
	mac.Write([]byte(hsInput))
	return none, hsInput + "." + b64url(mac.Sum(nil))
}

func jwtCases(t *testing.T, f *identityFixture) []jwtCase {
	noneToken, hsToken := forgedTokens(t, f)
	padded := func(n int) func() string {
		return func() string { return f.token(t, tokenSpec{claims: map[string]any{"pad": strings.Repeat("x", n)}}) }
	}
	return []jwtCase{
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
		{"10 KB token", padded(7 << 10), 401, "token_too_large"},
		{"20 KB token", padded(15 << 10), 401, "token_too_large"},
		// Past Caddy's own header limit (max_header_size, 16 KiB plus
		// Go's slack): the server answers 431 before any handler runs,
		// so nothing reaches the backend.
		{"30 KB token", padded(22 << 10), 431, ""},
		{"garbage", func() string { return "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl" }, 401, ""},
		{"unknown kid, then the JWKS rotates", func() string {
			f.rotate()
			return f.token(t, tokenSpec{key: f.rotatedKey, alg: jose.RS256, kid: "rsa-2"})
		}, 200, ""},
	}
}

func TestIdentityJWT(t *testing.T) {
	g := startGateway(t)
	cases := jwtCases(t, g.identity)
	g.newAuditLines(t)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			resp, body := post(t, jwtURL, "/Cust12345/api/v1/ChatSession/427/Reset", "Bearer "+tok, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 401 && !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), "|"), `error="invalid_token"`) {
				t.Errorf("401 without invalid_token challenge: %q", resp.Header.Values("WWW-Authenticate"))
			}
			if tt.wantReason != "" && !strings.Contains(string(body), `"`+tt.wantReason+`"`) {
				t.Errorf("body %s lacks reason %s", body, tt.wantReason)
			}
			checkJWTRecord(t, g, tt.wantStatus, tok, body)
		})
	}
}

// checkJWTRecord: a request that reached the guard has one record, which
// holds the verified principal when allowed; neither the record nor the
// body holds the token.
func checkJWTRecord(t *testing.T, g *gateway, status int, tok string, body []byte) {
	t.Helper()
	recs := g.newAuditLines(t)
	if status == http.StatusRequestHeaderFieldsTooLarge {
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
	if status == 200 {
		if field(recs[0], "resetguard.principal_source") != "jwt" || field(recs[0], "user.id") != "5" || field(recs[0], "user.domain") != "Cust12345" {
			t.Errorf("audit principal fields wrong: %s", raw)
		}
	}
}

func TestIdentityPrincipalLookup(t *testing.T) {
	g := startGateway(t)
	f := g.identity
	g.newAuditLines(t)
	send := func(ticket string) (int, []byte) {
		resp, body := post(t, lookupPURL, "/Cust12345/api/v1/ChatSession/427/Reset", "SoTicket "+ticket, nil)
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
