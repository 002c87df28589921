package credential

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	"github.com/resetguard/caddy-resetguard/internal/superoffice"
	sotest "github.com/resetguard/caddy-resetguard/internal/superoffice/superofficetest"
)

// plCarrierPrincipal is what sotest.Carrier maps to.
var plCarrierPrincipal = &Principal{
	Source:         "backend",
	Subject:        "JANE",
	AssociateID:    5,
	UserType:       "InternalAssociate",
	RoleName:       "Chat agent",
	UserName:       "jane",
	Tenant:         "Cust12345",
	Licenses:       []string{"USER", "CHAT"},
	FunctionRights: []string{"allow-chat-reset", "chat-admin"},
}

// newPL returns a lookup against upstream with the client timeout and
// the cache settings mod gives.
func newPL(t testing.TB, upstream string, timeout time.Duration, mod func(*PrincipalLookupConfig)) *PrincipalLookup {
	t.Helper()
	backend, err := superoffice.NewClient(superoffice.Config{Upstream: upstream, Timeout: timeout})
	if err != nil {
		t.Fatalf("superoffice.NewClient: %v", err)
	}
	cfg := PrincipalLookupConfig{Backend: backend}
	if mod != nil {
		mod(&cfg)
	}
	l, err := NewPrincipalLookup(cfg)
	if err != nil {
		t.Fatalf("NewPrincipalLookup: %v", err)
	}
	return l
}

// wantRefusal fails unless err is a refusal with status and reason.
func wantRefusal(t *testing.T, err error, status int, reason string) *refusal.Refusal {
	t.Helper()
	rf, ok := refusal.As(err)
	if !ok {
		t.Fatalf("error %T %v is not a *refusal.Refusal", err, err)
	}
	if rf.Status != status || rf.Reason() != reason {
		t.Errorf("got %d %s (%v), want %d %s", rf.Status, rf.Reason(), err, status, reason)
	}
	return rf
}

func TestNewPrincipalLookupConfig(t *testing.T) {
	backend, err := superoffice.NewClient(superoffice.Config{Upstream: "http://backend"})
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		cfg  PrincipalLookupConfig
	}{
		{"no backend", PrincipalLookupConfig{}},
		{"negative ttl", PrincipalLookupConfig{Backend: backend, TTL: -1}},
		{"negative max entries", PrincipalLookupConfig{Backend: backend, MaxEntries: -1}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewPrincipalLookup(c.cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
	l, err := NewPrincipalLookup(PrincipalLookupConfig{Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	if l.cache.ttl != DefaultPrincipalTTL {
		t.Errorf("default ttl %v, want %v", l.cache.ttl, DefaultPrincipalTTL)
	}
}

func TestPrincipalLookupMapsBackendAnswer(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 0))
	l := newPL(t, b.URL, 0, nil)
	p, err := l.Lookup(context.Background(), "k", "/Cust12345", sotest.CallerHeaders())
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !reflect.DeepEqual(p, plCarrierPrincipal) {
		t.Errorf("got  %#v\nwant %#v", p, plCarrierPrincipal)
	}
}

func TestPrincipalLookupCaches(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 0))
	l := newPL(t, b.URL, 0, nil)
	ctx := context.Background()
	var first *Principal
	for i := range 20 {
		p, err := l.Lookup(ctx, "key-a", "", sotest.CallerHeaders())
		if err != nil {
			t.Fatalf("Lookup %d: %v", i, err)
		}
		if first == nil {
			first = p
		} else if p != first {
			t.Errorf("Lookup %d returned another principal than the cached one", i)
		}
	}
	if n := b.Calls(); n != 1 {
		t.Errorf("backend calls for 20 lookups of one key = %d, want 1", n)
	}
	if h, m, c := l.Stats(); h != 19 || m != 1 || c != 1 {
		t.Errorf("Stats() = %d hits, %d misses, %d calls; want 19, 1, 1", h, m, c)
	}

	for _, k := range []string{"key-b", "key-c", "key-b", "key-a"} {
		if _, err := l.Lookup(ctx, k, "", sotest.CallerHeaders()); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Calls(); n != 3 {
		t.Errorf("backend calls after keys b and c = %d, want 3", n)
	}
}

func TestPrincipalLookupTTL(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 0))
	l := newPL(t, b.URL, 0, func(c *PrincipalLookupConfig) { c.TTL = 100 * time.Millisecond })
	ctx := context.Background()
	for range 2 {
		if _, err := l.Lookup(ctx, "k", "", sotest.CallerHeaders()); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.Calls(); n != 1 {
		t.Fatalf("backend calls within TTL = %d, want 1", n)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := l.Lookup(ctx, "k", "", sotest.CallerHeaders()); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(); n != 2 {
		t.Errorf("backend calls after TTL = %d, want 2", n)
	}
}

func TestPrincipalLookupSizeBound(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 0))
	l := newPL(t, b.URL, 0, func(c *PrincipalLookupConfig) { c.MaxEntries = 2 })
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, err := l.Lookup(ctx, k, "", sotest.CallerHeaders()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Lookup(ctx, "k3", "", sotest.CallerHeaders()); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(); n != 3 {
		t.Fatalf("backend calls = %d, want 3 (k3 still cached)", n)
	}
	if _, err := l.Lookup(ctx, "k1", "", sotest.CallerHeaders()); err != nil {
		t.Fatal(err)
	}
	if n := b.Calls(); n != 4 {
		t.Errorf("backend calls after asking for k1 again = %d, want 4 (k1 evicted)", n)
	}
}

// TestPrincipalLookupSendsCallerCredential: the cached lookup asks with
// the caller's credential headers, under the caller's prefix.
func TestPrincipalLookupSendsCallerCredential(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(http.StatusOK, sotest.Carrier, 0))
	l := newPL(t, b.URL, 0, nil)
	if _, err := l.Lookup(context.Background(), "k", "/Cust12345", sotest.CallerHeaders()); err != nil {
		t.Fatal(err)
	}
	r := b.LastRequest(t)
	if r.URL.Path != "/Cust12345/api/v1/User/currentPrincipal" || r.Header.Get("Authorization") != sotest.Ticket ||
		r.Header.Get("So-Apptoken") != sotest.AppToken || r.Header.Get("X-Other") != "" {
		t.Errorf("lookup %s with headers %v", r.URL.Path, r.Header)
	}
}

func TestPrincipalLookupEmptyKey(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(200, sotest.Carrier, 0))
	l := newPL(t, b.URL, 0, nil)
	_, err := l.Lookup(context.Background(), "", "", sotest.CallerHeaders())
	wantRefusal(t, err, http.StatusServiceUnavailable, refusal.PrincipalLookupFailed)
	if b.Calls() != 0 {
		t.Error("empty key reached the backend")
	}
}

func TestPrincipalLookupFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + closed.Addr().String()
	closed.Close()

	oversized := `{"Associate": "A", "Pad": "` + strings.Repeat("a", superoffice.MaxBody) + `"}`

	cases := []struct {
		name       string
		handler    http.HandlerFunc // nil: backend down
		timeout    time.Duration
		wantStatus int
		wantReason string
		maxTime    time.Duration
	}{
		{name: "401", handler: sotest.Serve(401, `{"Error": true}`, 0), wantStatus: 401, wantReason: refusal.PrincipalUnauthenticated},
		{name: "403", handler: sotest.Serve(403, `{"Error": true}`, 0), wantStatus: 401, wantReason: refusal.PrincipalUnauthenticated},
		{name: "500", handler: sotest.Serve(500, `{"Error": true, "ErrorMessage": "boom"}`, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "502", handler: sotest.Serve(502, `bad gateway`, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "204", handler: sotest.Serve(204, ``, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "404", handler: sotest.Serve(404, `{}`, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "malformed JSON", handler: sotest.Serve(200, `{"Associate": "A",`, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "null body", handler: sotest.Serve(200, `null`, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "HTML login page", handler: sotest.Serve(200, `<html>login</html>`, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "body over 1 MiB", handler: sotest.Serve(200, oversized, 0), wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{name: "backend down", wantStatus: 503, wantReason: refusal.PrincipalLookupFailed},
		{
			name: "slower than timeout", handler: sotest.Serve(200, sotest.Carrier, 200*time.Millisecond), timeout: 50 * time.Millisecond,
			wantStatus: 503, wantReason: refusal.PrincipalLookupFailed, maxTime: 180 * time.Millisecond,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			upstream := downURL
			var b *sotest.Backend
			if c.handler != nil {
				b = sotest.NewBackend(t, c.handler)
				upstream = b.URL
			}
			l := newPL(t, upstream, c.timeout, nil)
			for attempt := 1; attempt <= 2; attempt++ {
				start := time.Now()
				p, err := l.Lookup(context.Background(), "k", "/Cust12345", sotest.CallerHeaders())
				elapsed := time.Since(start)
				if err == nil {
					t.Fatalf("attempt %d: got principal %#v, want error", attempt, p)
				}
				wantRefusal(t, err, c.wantStatus, c.wantReason)
				if c.maxTime > 0 && elapsed > c.maxTime {
					t.Errorf("attempt %d: took %v, want under %v", attempt, elapsed, c.maxTime)
				}
				sotest.CheckNoSecrets(t, err)
			}
			// Failures are not cached: both attempts asked the backend.
			if _, _, calls := l.Stats(); calls != 2 {
				t.Errorf("lookup backend calls = %d, want 2 (failures not cached)", calls)
			}
			if b != nil && b.Calls() != 2 {
				t.Errorf("backend saw %d calls, want 2", b.Calls())
			}
		})
	}
}

func TestPrincipalLookupTimeoutErrorIsDeadline(t *testing.T) {
	b := sotest.NewBackend(t, sotest.Serve(200, sotest.Carrier, 200*time.Millisecond))
	l := newPL(t, b.URL, 50*time.Millisecond, nil)
	_, err := l.Lookup(context.Background(), "k", "", sotest.CallerHeaders())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func BenchmarkPrincipalLookupCached(b *testing.B) {
	be := sotest.NewBackend(b, sotest.Serve(200, sotest.Carrier, 0))
	l := newPL(b, be.URL, 0, nil)
	ctx := context.Background()
	h := sotest.CallerHeaders()
	if _, err := l.Lookup(ctx, "k", "/Cust12345", h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Lookup(ctx, "k", "/Cust12345", h); err != nil {
			b.Fatal(err)
		}
	}
	if n := be.Calls(); n != 1 {
		b.Fatalf("backend calls = %d, want 1", n)
	}
}

func BenchmarkPrincipalLookupCachedParallel(b *testing.B) {
	be := sotest.NewBackend(b, sotest.Serve(200, sotest.Carrier, 0))
	l := newPL(b, be.URL, 0, nil)
	ctx := context.Background()
	h := sotest.CallerHeaders()
	if _, err := l.Lookup(ctx, "k", "/Cust12345", h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Lookup(ctx, "k", "/Cust12345", h); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
