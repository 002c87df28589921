package credential

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

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
		jtCheckRefusal(t, err, "unknown_kid", token)
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
	jtCheckRefusal(t, err, "unknown_kid", token) // fetched, still unknown
	srv.set(jtJWKS(t, jtPublic(k.rsa2, "rsa-2", "")))
	_, err = v.Verify(ctx, token)
	jtCheckRefusal(t, err, "unknown_kid", token) // rate-limited
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
	jtCheckRefusal(t, err, "unknown_kid", token)
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
	if v.stop != nil || v.done != nil {
		t.Error("a file verifier started a refresh goroutine")
	}
	v.Close()
	v.Close()
	// Close only stops refreshing: the loaded keys still verify.
	if _, err := v.Verify(context.Background(), jtSign(t, jose.RS256, k.rsa1, "rsa-1", jtClaims(nil), nil)); err != nil {
		t.Errorf("Verify after Close: %v", err)
	}
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

// jtConfigCase is a config NewJWTVerifier must refuse, and a word its
// error must hold.
type jtConfigCase struct {
	name string
	cfg  JWTConfig
	want string
}

func runJTConfigCases(t *testing.T, cases []jtConfigCase) {
	t.Helper()
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
}

// jtWriteFile writes body to name in dir and returns its path.
func jtWriteFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// jtConfig is a valid file-based config, changed by mod.
func jtConfig(jwksFile string, mod func(*JWTConfig)) JWTConfig {
	c := JWTConfig{Issuer: jtIssuer, Audiences: []string{jtAudience}, JWKSFile: jwksFile}
	mod(&c)
	return c
}

func TestNewJWTVerifierConfig(t *testing.T) {
	good := jtWriteFile(t, t.TempDir(), "good.json", string(jtJWKS(t, jtPublic(jtKeys().rsa1, "rsa-1", ""))))
	base := func(mod func(*JWTConfig)) JWTConfig { return jtConfig(good, mod) }
	runJTConfigCases(t, []jtConfigCase{
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
		{"cache TTL past 1h", base(func(c *JWTConfig) { c.CacheTTL = time.Hour + time.Second }), "cache TTL"},
		{"negative cache size", base(func(c *JWTConfig) { c.CacheMaxEntries = -1 }), "cache size"},
	})

	// Defaults.
	v := newJTVerifier(t, JWTConfig{JWKSFile: good})
	if v.leeway != 30*time.Second || v.maxBytes != 8192 || v.minRefresh != 30*time.Second ||
		len(v.algs) != 2 || v.algs[0] != jose.RS256 || v.algs[1] != jose.ES256 {
		t.Errorf("defaults: leeway %s, max %d, min refresh %s, algs %v", v.leeway, v.maxBytes, v.minRefresh, v.algs)
	}
	if v.cache == nil || v.cache.ttl != 5*time.Minute {
		t.Errorf("default cache: %+v, want a 5m TTL", v.cache)
	}
	if v := newJTVerifier(t, JWTConfig{JWKSFile: good, CacheTTL: -1}); v.cache != nil {
		t.Error("a negative cache TTL left a cache")
	}
}

func TestNewJWTVerifierJWKSFile(t *testing.T) {
	k := jtKeys()
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name, body string) JWTConfig {
		return jtConfig(jtWriteFile(t, dir, name, body), func(*JWTConfig) {})
	}
	runJTConfigCases(t, []jtConfigCase{
		{"JWKS file missing", jtConfig(filepath.Join(dir, "nope.json"), func(*JWTConfig) {}), "reading JWKS file"},
		{"JWKS file not JSON", file("bad.json", "{"), "not a JWKS"},
		{"JWKS file without keys", file("empty.json", `{"keys":[]}`), "no usable"},
		{"JWKS file with a symmetric key only",
			file("oct.json", `{"keys":[{"kty":"oct","k":"`+jtB64("0123456789abcdef0123456789abcdef")+`"}]}`), "no usable"},
		{"JWKS file with a private key",
			file("private.json", `{"keys":[`+mustJSON(t, jose.JSONWebKey{Key: k.rsa1, KeyID: "rsa-1"})+`]}`), "private"},
		{"JWKS file with a short RSA key", file("short.json", string(jtJWKS(t, jtPublic(small, "short", "")))), "no usable"},
	})
}

func TestNewJWTVerifierJWKSURL(t *testing.T) {
	k := jtKeys()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	notFound := newJTServer(t, jtJWKS(t, jtPublic(k.rsa1, "rsa-1", "")))
	notFound.status.Store(http.StatusNotFound)
	huge := newJTServer(t, []byte(`{"keys":[],"pad":"`+strings.Repeat("a", 1<<20)+`"}`))
	html := newJTServer(t, []byte("<html></html>"))
	redirect := httptest.NewServer(http.RedirectHandler(notFound.URL, http.StatusFound))
	defer redirect.Close()
	at := func(u string) JWTConfig { return jtConfig("", func(c *JWTConfig) { c.JWKSURL = u }) }
	runJTConfigCases(t, []jtConfigCase{
		{"JWKS URL down", at(downURL), "fetching JWKS"},
		{"JWKS URL 404", at(notFound.URL), "status 404"},
		{"JWKS URL redirecting to a 404", at(redirect.URL), "status 404"},
		{"JWKS URL too large", at(huge.URL), "larger than"},
		{"JWKS URL not JSON", at(html.URL), "not a JWKS"},
		{"JWKS URL ftp", at("ftp://example.com/jwks"), "http or https"},
		{"JWKS URL relative", at("/jwks.json"), "http or https"},
	})

	// The JWKS URL's user info does not reach error text.
	_, err := NewJWTVerifier(context.Background(), at(strings.Replace(notFound.URL, "http://", "http://user:hunter2@", 1)))
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
	fromTLS, fromPlain := req("https://idp.example/jwks"), req("http://idp.example/jwks")
	for _, tc := range []struct {
		name    string
		to      string
		via     []*http.Request
		allowed bool
	}{
		{"https to http", "http://idp.example/jwks", []*http.Request{fromTLS}, false},
		{"https to https", "https://cdn.example/jwks", []*http.Request{fromTLS}, true},
		{"http to https", "https://cdn.example/jwks", []*http.Request{fromPlain}, true},
		{"fifth redirect", "https://cdn.example/jwks", []*http.Request{fromTLS, fromTLS, fromTLS, fromTLS, fromTLS}, false},
	} {
		if err := noDowngrade(req(tc.to), tc.via); (err == nil) != tc.allowed {
			t.Errorf("%s: noDowngrade = %v, want allowed %v", tc.name, err, tc.allowed)
		}
	}
}
