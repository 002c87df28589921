package credential

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Credential values used by the lookup tests. None of them may ever show
// up in an error text.
const (
	plTicket   = "SOTicket 7T:dGlja2V0LXNlY3JldC12YWx1ZQ=="
	plSession  = "ASP.NET_SessionId=sess-secret-4711; XSRF-TOKEN=xsrf-secret-0815"
	plXSRF     = "xsrf-secret-0815"
	plAppToken = "apptoken-secret-42"
)

var plSecrets = []string{"dGlja2V0LXNlY3JldC12YWx1ZQ", "sess-secret-4711", "xsrf-secret-0815", "apptoken-secret-42"}

// plCarrier is a SoPrincipalCarrier as a SuperOffice backend returns it.
const plCarrier = `{
  "UserType": "InternalAssociate",
  "Associate": "JANE",
  "AssociateId": 5,
  "PersonId": 12,
  "ContactId": 2,
  "GroupId": 3,
  "RoleId": 1,
  "RoleName": "Chat agent",
  "RoleType": "Employee",
  "Licenses": ["USER", "CHAT"],
  "FunctionRights": ["allow-chat-reset", "chat-admin"],
  "FullName": "Jane Doe",
  "EMailAddress": "jane.doe@example.com",
  "EjUserId": 4,
  "UserName": "jane",
  "SecondaryGroups": [1, 2],
  "DatabaseContextIdentifier": "Cust12345",
  "_Links": {"Self": "https://example.invalid/api/v1/User/currentPrincipal"}
}`

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

// plHeaders is a caller's request headers: every credential header plus
// one that must not be forwarded.
func plHeaders() http.Header {
	h := http.Header{}
	h.Set("Authorization", plTicket)
	h.Set("Cookie", plSession)
	h.Set("X-Xsrf-Token", plXSRF)
	h.Set("So-Apptoken", plAppToken)
	h.Set("X-Other", "must-not-be-forwarded")
	h.Set("Content-Type", "application/json")
	return h
}

// plBackend is a loopback backend that counts the calls it gets.
type plBackend struct {
	srv   *httptest.Server
	calls atomic.Int64

	mu   sync.Mutex
	reqs []*http.Request // clones of the requests received
}

func newPLBackend(t testing.TB, h http.HandlerFunc) *plBackend {
	t.Helper()
	b := &plBackend{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		b.mu.Lock()
		b.reqs = append(b.reqs, r.Clone(context.Background()))
		b.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *plBackend) lastRequest(t *testing.T) *http.Request {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		t.Fatal("backend got no request")
	}
	return b.reqs[len(b.reqs)-1]
}

// plServe answers with status and body after delay (cut short if the
// client goes away, so that closing the server never waits for it).
func plServe(status int, body string, delay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func newPL(t testing.TB, upstream string, mod func(*PrincipalLookupConfig)) *PrincipalLookup {
	t.Helper()
	cfg := PrincipalLookupConfig{Upstream: upstream}
	if mod != nil {
		mod(&cfg)
	}
	l, err := NewPrincipalLookup(cfg)
	if err != nil {
		t.Fatalf("NewPrincipalLookup: %v", err)
	}
	return l
}

func checkNoSecrets(t *testing.T, err error) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range plSecrets {
			if strings.Contains(text, s) {
				t.Errorf("error text contains credential %q: %s", s, text)
			}
		}
	}
}

func TestParseCarrier(t *testing.T) {
	cases := []struct {
		name string
		body string
		want *Principal
	}{
		{name: "realistic carrier", body: plCarrier, want: plCarrierPrincipal},
		{
			name: "camel-cased keys, numeric user type, string id",
			body: `{"userType": 5, "associate": "SYSTEM", "associateId": "7", "roleName": "Integration",
				"userName": "sys", "databaseContextIdentifier": "cust99", "licenses": [], "functionRights": null}`,
			want: &Principal{Source: "backend", Subject: "SYSTEM", AssociateID: 7, UserType: "SystemAssociate",
				RoleName: "Integration", UserName: "sys", Tenant: "Cust99", Licenses: []string{}},
		},
		{
			name: "numeric user types in enum order",
			body: `{"Associate": "A", "UserType": 3}`,
			want: &Principal{Source: "backend", Subject: "A", UserType: "ExternalAssociate"},
		},
		{
			name: "user type out of range is Unknown",
			body: `{"Associate": "A", "UserType": 9}`,
			want: &Principal{Source: "backend", Subject: "A", UserType: "Unknown"},
		},
		{
			name: "user type name spelt canonically",
			body: `{"Associate": "A", "UserType": "anonymousassociate"}`,
			want: &Principal{Source: "backend", Subject: "A", UserType: "AnonymousAssociate"},
		},
		{
			name: "unknown user type name kept",
			body: `{"Associate": "A", "UserType": "FutureAssociate"}`,
			want: &Principal{Source: "backend", Subject: "A", UserType: "FutureAssociate"},
		},
		{
			name: "missing user type is Unknown",
			body: `{"Associate": "A", "AssociateId": 0}`,
			want: &Principal{Source: "backend", Subject: "A", UserType: "Unknown"},
		},
		{
			name: "licenses as objects and junk",
			body: `{"AssociateId": 9, "UserType": "ResourceAssociate", "Licenses": [
				{"Name": "CHAT", "Description": "Chat"}, {"License": "SALE"}, {"Description": "Marketing"},
				{"Other": 1}, 42, null, ["nested"], "PLAIN"],
				"FunctionRights": ["a", 1, {"x": 1}, null, "", "b"]}`,
			want: &Principal{Source: "backend", AssociateID: 9, UserType: "ResourceAssociate",
				Licenses: []string{"CHAT", "SALE", "Marketing", "PLAIN"}, FunctionRights: []string{"a", "b"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseCarrier([]byte(c.body))
			if err != nil {
				t.Fatalf("parseCarrier: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %#v\nwant %#v", got, c.want)
			}
		})
	}
}

func TestParseCarrierDropsPersonalData(t *testing.T) {
	p, err := parseCarrier([]byte(plCarrier))
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("%#v", p)
	for _, s := range []string{"Jane Doe", "jane.doe@example.com"} {
		if strings.Contains(text, s) {
			t.Errorf("principal carries personal data %q: %s", s, text)
		}
	}
}

func TestParseCarrierMalformed(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"Associate": "A"`, `{"Associate": "A"} trailing`,
		`{"Error": true, "ErrorType": "SoException", "ErrorMessage": "boom"}`,
		`{"Associate": 5}`, `{"Associate": "A", "AssociateId": "five"}`, `{"Associate": "A", "AssociateId": 1.5}`,
		`<SoPrincipalCarrier><Associate>A</Associate></SoPrincipalCarrier>`,
	} {
		if p, err := parseCarrier([]byte(body)); err == nil {
			t.Errorf("parseCarrier(%q) = %#v, want error", body, p)
		}
	}
}

func TestPrincipalFromClaims(t *testing.T) {
	const so = "http://schemes.superoffice.net/identity/"
	cases := []struct {
		name                         string
		claims                       map[string]any
		subject, associateID, tenant string
		want                         Principal
	}{
		{
			name: "SuperOffice string claims",
			claims: map[string]any{"sub": "jane@example.com", so + "associateid": "5", so + "ctx": "Cust12345",
				so + "is_administrator": "False"},
			associateID: so + "associateid", tenant: so + "ctx",
			want: Principal{Source: "jwt", Subject: "jane@example.com", AssociateID: 5, Tenant: "Cust12345"},
		},
		{
			name:    "numeric claims as decoded from JSON",
			claims:  map[string]any{"uid": "bot-1", "aid": float64(42), "tid": "cust7"},
			subject: "uid", associateID: "aid", tenant: "tid",
			want: Principal{Source: "jwt", Subject: "bot-1", AssociateID: 42, Tenant: "Cust7"},
		},
		{
			name:   "json.Number and integer claims",
			claims: map[string]any{"sub": json.Number("1001"), "aid": json.Number("43"), "n": int64(8)},
			// json.Number subject is formatted as sent.
			associateID: "aid",
			want:        Principal{Source: "jwt", Subject: "1001", AssociateID: 43},
		},
		{
			name:        "Go int claim",
			claims:      map[string]any{"sub": "x", "aid": 44},
			associateID: "aid",
			want:        Principal{Source: "jwt", Subject: "x", AssociateID: 44},
		},
		{
			name:        "unparseable associate id is 0",
			claims:      map[string]any{"sub": "x", "aid": "five"},
			associateID: "aid",
			want:        Principal{Source: "jwt", Subject: "x"},
		},
		{
			name:        "fractional associate id is 0",
			claims:      map[string]any{"sub": "x", "aid": 5.5},
			associateID: "aid",
			want:        Principal{Source: "jwt", Subject: "x"},
		},
		{
			name:        "out of range associate id is 0",
			claims:      map[string]any{"sub": "x", "aid": 1e30},
			associateID: "aid",
			want:        Principal{Source: "jwt", Subject: "x"},
		},
		{
			name:        "boolean associate id is 0",
			claims:      map[string]any{"sub": "x", "aid": true},
			associateID: "aid",
			want:        Principal{Source: "jwt", Subject: "x"},
		},
		{
			name:        "missing claims",
			claims:      map[string]any{"iss": "https://sod.superoffice.com"},
			associateID: so + "associateid", tenant: so + "ctx",
			want: Principal{Source: "jwt"},
		},
		{
			name:        "empty claim names map nothing",
			claims:      map[string]any{"sub": "s", "": "5"},
			associateID: "", tenant: "",
			want: Principal{Source: "jwt", Subject: "s"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := PrincipalFromClaims(c.claims, c.subject, c.associateID, c.tenant)
			if reflect.ValueOf(got.Claims).Pointer() != reflect.ValueOf(c.claims).Pointer() {
				t.Error("Claims is not the verified claims map")
			}
			got.Claims = nil
			if !reflect.DeepEqual(*got, c.want) {
				t.Errorf("got  %#v\nwant %#v", *got, c.want)
			}
		})
	}
	if p := PrincipalFromClaims(nil, "", "", ""); p.Source != "jwt" || p.Claims != nil {
		t.Errorf("nil claims: %#v", p)
	}
}

func TestNewPrincipalLookupConfig(t *testing.T) {
	bad := []struct {
		name string
		cfg  PrincipalLookupConfig
	}{
		{"empty upstream", PrincipalLookupConfig{}},
		{"not http", PrincipalLookupConfig{Upstream: "ftp://backend"}},
		{"no host", PrincipalLookupConfig{Upstream: "http://"}},
		{"relative", PrincipalLookupConfig{Upstream: "/api"}},
		{"path", PrincipalLookupConfig{Upstream: "http://backend/superoffice"}},
		{"query", PrincipalLookupConfig{Upstream: "http://backend?x=1"}},
		{"fragment", PrincipalLookupConfig{Upstream: "http://backend#x"}},
		{"user info", PrincipalLookupConfig{Upstream: "http://user:pw-secret@backend"}},
		{"negative ttl", PrincipalLookupConfig{Upstream: "http://backend", TTL: -1}},
		{"negative timeout", PrincipalLookupConfig{Upstream: "http://backend", Timeout: -1}},
		{"negative max entries", PrincipalLookupConfig{Upstream: "http://backend", MaxEntries: -1}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewPrincipalLookup(c.cfg)
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("error quotes the upstream password: %v", err)
			}
		})
	}

	l, err := NewPrincipalLookup(PrincipalLookupConfig{Upstream: "https://backend:8443/"})
	if err != nil {
		t.Fatal(err)
	}
	if l.timeout != DefaultPrincipalTimeout || l.base.String() != "https://backend:8443" {
		t.Errorf("defaults: timeout %v base %v", l.timeout, l.base)
	}
	if l.client.CheckRedirect == nil {
		t.Error("default client follows redirects")
	}

	// A supplied client is copied, not modified, and still made not to
	// follow redirects.
	own := &http.Client{}
	l, err = NewPrincipalLookup(PrincipalLookupConfig{Upstream: "http://backend", Client: own})
	if err != nil {
		t.Fatal(err)
	}
	if own.CheckRedirect != nil || l.client == own || l.client.CheckRedirect == nil {
		t.Error("supplied client not copied and restricted")
	}
}

func TestPrincipalLookupMapsBackendAnswer(t *testing.T) {
	b := newPLBackend(t, plServe(http.StatusOK, plCarrier, 0))
	l := newPL(t, b.srv.URL, nil)
	p, err := l.Lookup(context.Background(), "k", "/Cust12345", plHeaders())
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if !reflect.DeepEqual(p, plCarrierPrincipal) {
		t.Errorf("got  %#v\nwant %#v", p, plCarrierPrincipal)
	}
}

func TestPrincipalLookupCaches(t *testing.T) {
	b := newPLBackend(t, plServe(http.StatusOK, plCarrier, 0))
	l := newPL(t, b.srv.URL, nil)
	ctx := context.Background()
	var first *Principal
	for i := range 20 {
		p, err := l.Lookup(ctx, "key-a", "", plHeaders())
		if err != nil {
			t.Fatalf("Lookup %d: %v", i, err)
		}
		if first == nil {
			first = p
		} else if p != first {
			t.Errorf("Lookup %d returned another principal than the cached one", i)
		}
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("backend calls for 20 lookups of one key = %d, want 1", n)
	}
	if h, m, c := l.Stats(); h != 19 || m != 1 || c != 1 {
		t.Errorf("Stats() = %d hits, %d misses, %d calls; want 19, 1, 1", h, m, c)
	}

	for _, k := range []string{"key-b", "key-c", "key-b", "key-a"} {
		if _, err := l.Lookup(ctx, k, "", plHeaders()); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.calls.Load(); n != 3 {
		t.Errorf("backend calls after keys b and c = %d, want 3", n)
	}
}

func TestPrincipalLookupTTL(t *testing.T) {
	b := newPLBackend(t, plServe(http.StatusOK, plCarrier, 0))
	l := newPL(t, b.srv.URL, func(c *PrincipalLookupConfig) { c.TTL = 100 * time.Millisecond })
	ctx := context.Background()
	for range 2 {
		if _, err := l.Lookup(ctx, "k", "", plHeaders()); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.calls.Load(); n != 1 {
		t.Fatalf("backend calls within TTL = %d, want 1", n)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := l.Lookup(ctx, "k", "", plHeaders()); err != nil {
		t.Fatal(err)
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("backend calls after TTL = %d, want 2", n)
	}
}

func TestPrincipalLookupSizeBound(t *testing.T) {
	b := newPLBackend(t, plServe(http.StatusOK, plCarrier, 0))
	l := newPL(t, b.srv.URL, func(c *PrincipalLookupConfig) { c.MaxEntries = 2 })
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, err := l.Lookup(ctx, k, "", plHeaders()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Lookup(ctx, "k3", "", plHeaders()); err != nil {
		t.Fatal(err)
	}
	if n := b.calls.Load(); n != 3 {
		t.Fatalf("backend calls = %d, want 3 (k3 still cached)", n)
	}
	if _, err := l.Lookup(ctx, "k1", "", plHeaders()); err != nil {
		t.Fatal(err)
	}
	if n := b.calls.Load(); n != 4 {
		t.Errorf("backend calls after asking for k1 again = %d, want 4 (k1 evicted)", n)
	}
}

func TestPrincipalLookupCoalesces(t *testing.T) {
	b := newPLBackend(t, plServe(http.StatusOK, plCarrier, 100*time.Millisecond))
	l := newPL(t, b.srv.URL, nil)
	const n = 50
	start := make(chan struct{})
	var wg sync.WaitGroup
	results := make([]*Principal, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = l.Lookup(context.Background(), "same", "/Cust12345", plHeaders())
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("lookup %d: %v", i, errs[i])
		} else if !reflect.DeepEqual(results[i], plCarrierPrincipal) {
			t.Errorf("lookup %d: %#v", i, results[i])
		}
	}
	if c := b.calls.Load(); c != 1 {
		t.Errorf("backend calls for %d concurrent lookups = %d, want 1", n, c)
	}
	if _, _, c := l.Stats(); c != 1 {
		t.Errorf("Stats backend calls = %d, want 1", c)
	}
}

// TestPrincipalLookupWaiterCancelled cancels the client whose lookup
// started the shared call: it returns at once, and the call still
// completes for the other waiter and fills the cache.
func TestPrincipalLookupWaiterCancelled(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var backendCancelled atomic.Bool
	b := newPLBackend(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			backendCancelled.Store(true)
			return
		}
		_, _ = w.Write([]byte(plCarrier))
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	l := newPL(t, b.srv.URL, func(c *PrincipalLookupConfig) { c.Timeout = 5 * time.Second })

	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	type result struct {
		p   *Principal
		err error
		at  time.Time
	}
	r1 := make(chan result, 1)
	go func() {
		p, err := l.Lookup(ctx1, "k", "", plHeaders())
		r1 <- result{p, err, time.Now()}
	}()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("backend never called")
	}

	r2 := make(chan result, 1)
	go func() {
		p, err := l.Lookup(context.Background(), "k", "", plHeaders())
		r2 <- result{p, err, time.Now()}
	}()
	// Wait until the second lookup has missed the cache and is about to
	// join the flight, which cannot end before release.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, m, _ := l.Stats(); m == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("second lookup never started")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)

	cancelled := time.Now()
	cancel1()
	var res1 result
	select {
	case res1 = <-r1:
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled waiter did not return")
	}
	if d := res1.at.Sub(cancelled); d > 100*time.Millisecond {
		t.Errorf("cancelled waiter returned after %v", d)
	}
	var le *LookupError
	if !errors.As(res1.err, &le) || le.Reason != ReasonPrincipalLookupFailed || !errors.Is(res1.err, context.Canceled) {
		t.Errorf("cancelled waiter error = %v", res1.err)
	}
	select {
	case res := <-r2:
		t.Fatalf("second waiter returned before the backend answered: %+v", res)
	default:
	}

	close(release)
	res2 := <-r2
	if res2.err != nil || !reflect.DeepEqual(res2.p, plCarrierPrincipal) {
		t.Fatalf("second waiter: %#v, %v", res2.p, res2.err)
	}
	if backendCancelled.Load() {
		t.Error("shared backend call was cancelled with the first client")
	}
	if _, err := l.Lookup(context.Background(), "k", "", plHeaders()); err != nil {
		t.Fatal(err)
	}
	if h, _, c := l.Stats(); h != 1 || c != 1 {
		t.Errorf("after the shared call: %d hits, %d backend calls; want 1, 1", h, c)
	}
}

func TestPrincipalLookupFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + closed.Addr().String()
	closed.Close()

	oversized := `{"Associate": "A", "Pad": "` + strings.Repeat("a", maxPrincipalBody) + `"}`

	cases := []struct {
		name       string
		handler    http.HandlerFunc // nil: backend down
		timeout    time.Duration
		wantStatus int
		wantReason string
		maxTime    time.Duration
	}{
		{name: "401", handler: plServe(401, `{"Error": true}`, 0), wantStatus: 401, wantReason: ReasonPrincipalUnauthenticated},
		{name: "403", handler: plServe(403, `{"Error": true}`, 0), wantStatus: 401, wantReason: ReasonPrincipalUnauthenticated},
		{name: "500", handler: plServe(500, `{"Error": true, "ErrorMessage": "boom"}`, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "502", handler: plServe(502, `bad gateway`, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "204", handler: plServe(204, ``, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "404", handler: plServe(404, `{}`, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "malformed JSON", handler: plServe(200, `{"Associate": "A",`, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "null body", handler: plServe(200, `null`, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "HTML login page", handler: plServe(200, `<html>login</html>`, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "body over 1 MiB", handler: plServe(200, oversized, 0), wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{name: "backend down", wantStatus: 503, wantReason: ReasonPrincipalLookupFailed},
		{
			name: "slower than timeout", handler: plServe(200, plCarrier, 200*time.Millisecond), timeout: 50 * time.Millisecond,
			wantStatus: 503, wantReason: ReasonPrincipalLookupFailed, maxTime: 180 * time.Millisecond,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			upstream := downURL
			var b *plBackend
			if c.handler != nil {
				b = newPLBackend(t, c.handler)
				upstream = b.srv.URL
			}
			l := newPL(t, upstream, func(cfg *PrincipalLookupConfig) { cfg.Timeout = c.timeout })
			for attempt := 1; attempt <= 2; attempt++ {
				start := time.Now()
				p, err := l.Lookup(context.Background(), "k", "/Cust12345", plHeaders())
				elapsed := time.Since(start)
				if err == nil {
					t.Fatalf("attempt %d: got principal %#v, want error", attempt, p)
				}
				var le *LookupError
				if !errors.As(err, &le) {
					t.Fatalf("attempt %d: error %T %v is not a *LookupError", attempt, err, err)
				}
				if le.Status != c.wantStatus || le.Reason != c.wantReason {
					t.Errorf("attempt %d: got %d %s (%v), want %d %s", attempt, le.Status, le.Reason, err, c.wantStatus, c.wantReason)
				}
				if c.maxTime > 0 && elapsed > c.maxTime {
					t.Errorf("attempt %d: took %v, want under %v", attempt, elapsed, c.maxTime)
				}
				checkNoSecrets(t, err)
			}
			// Failures are not cached: both attempts asked the backend.
			if _, _, calls := l.Stats(); calls != 2 {
				t.Errorf("lookup backend calls = %d, want 2 (failures not cached)", calls)
			}
			if b != nil && b.calls.Load() != 2 {
				t.Errorf("backend saw %d calls, want 2", b.calls.Load())
			}
		})
	}
}

func TestPrincipalLookupTimeoutErrorIsDeadline(t *testing.T) {
	b := newPLBackend(t, plServe(200, plCarrier, 200*time.Millisecond))
	l := newPL(t, b.srv.URL, func(c *PrincipalLookupConfig) { c.Timeout = 50 * time.Millisecond })
	_, err := l.Lookup(context.Background(), "k", "", plHeaders())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want one wrapping context.DeadlineExceeded", err)
	}
}

func TestPrincipalLookupBodyAtLimit(t *testing.T) {
	head, tail := `{"Associate": "A", "Pad": "`, `"}`
	body := head + strings.Repeat("a", maxPrincipalBody-len(head)-len(tail)) + tail
	b := newPLBackend(t, plServe(200, body, 0))
	l := newPL(t, b.srv.URL, nil)
	p, err := l.Lookup(context.Background(), "k", "", plHeaders())
	if err != nil || p.Subject != "A" {
		t.Fatalf("body of exactly %d bytes: %#v, %v", len(body), p, err)
	}
}

func TestPrincipalLookupSendsOnlyCredentialHeaders(t *testing.T) {
	b := newPLBackend(t, plServe(200, plCarrier, 0))
	l := newPL(t, b.srv.URL, nil)
	from := plHeaders()
	from.Add("Cookie", "second=cookie-line")
	before := from.Clone()
	if _, err := l.Lookup(context.Background(), "k", "", from); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(from, before) {
		t.Error("Lookup modified the caller's headers")
	}
	r := b.lastRequest(t)
	if r.Method != http.MethodGet {
		t.Errorf("method %s", r.Method)
	}
	for _, name := range []string{"Authorization", "Cookie", "X-Xsrf-Token", "So-Apptoken"} {
		if got, want := r.Header.Values(name), from.Values(name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q", got)
	}
	// Only the credential headers, Accept and what the Go client always
	// adds may reach the backend.
	allowed := map[string]bool{"Authorization": true, "Cookie": true, "X-Xsrf-Token": true, "So-Apptoken": true,
		"Accept": true, "User-Agent": true, "Accept-Encoding": true}
	for name := range r.Header {
		if !allowed[name] {
			t.Errorf("unexpected header %s: %q", name, r.Header.Values(name))
		}
	}
	if r.Header.Get("X-Other") != "" || r.Header.Get("Content-Type") != "" {
		t.Error("non-credential headers forwarded")
	}
}

func TestPrincipalLookupPath(t *testing.T) {
	b := newPLBackend(t, plServe(200, plCarrier, 0))
	l := newPL(t, b.srv.URL+"/", nil)
	cases := []struct {
		prefix, wantPath, wantEscaped string
	}{
		{"", "/api/v1/User/currentPrincipal", ""},
		{"/Cust12345", "/Cust12345/api/v1/User/currentPrincipal", ""},
		{"/superoffice/", "/superoffice/api/v1/User/currentPrincipal", ""},
		{"/a b/c?d", "/a b/c?d/api/v1/User/currentPrincipal", "/a%20b/c%3Fd/api/v1/User/currentPrincipal"},
	}
	for i, c := range cases {
		if _, err := l.Lookup(context.Background(), fmt.Sprint("key", i), c.prefix, plHeaders()); err != nil {
			t.Fatalf("prefix %q: %v", c.prefix, err)
		}
		r := b.lastRequest(t)
		if r.URL.Path != c.wantPath {
			t.Errorf("prefix %q: path %q, want %q", c.prefix, r.URL.Path, c.wantPath)
		}
		if c.wantEscaped != "" && r.URL.EscapedPath() != c.wantEscaped {
			t.Errorf("prefix %q: escaped path %q, want %q", c.prefix, r.URL.EscapedPath(), c.wantEscaped)
		}
		if r.URL.RawQuery != "" {
			t.Errorf("prefix %q: query %q", c.prefix, r.URL.RawQuery)
		}
	}

	calls := b.calls.Load()
	for _, prefix := range []string{"Cust1", "/../admin", "/a/./b", "/a//b", "/.."} {
		_, err := l.Lookup(context.Background(), "bad"+prefix, prefix, plHeaders())
		var le *LookupError
		if !errors.As(err, &le) || le.Reason != ReasonPrincipalLookupFailed {
			t.Errorf("prefix %q: error %v, want principal_lookup_failed", prefix, err)
		}
	}
	if b.calls.Load() != calls {
		t.Error("a refused prefix reached the backend")
	}
}

func TestPrincipalLookupDoesNotFollowRedirects(t *testing.T) {
	target := newPLBackend(t, plServe(200, plCarrier, 0))
	b := newPLBackend(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/api/v1/User/currentPrincipal", http.StatusFound)
	})
	for name, client := range map[string]*http.Client{"default client": nil, "supplied client": {}} {
		t.Run(name, func(t *testing.T) {
			l := newPL(t, b.srv.URL, func(c *PrincipalLookupConfig) { c.Client = client })
			_, err := l.Lookup(context.Background(), "k", "", plHeaders())
			var le *LookupError
			if !errors.As(err, &le) || le.Status != 503 || le.Reason != ReasonPrincipalLookupFailed {
				t.Errorf("error %v, want 503 principal_lookup_failed", err)
			}
			checkNoSecrets(t, err)
			if n := target.calls.Load(); n != 0 {
				t.Errorf("redirect target called %d times", n)
			}
		})
	}
}

func TestPrincipalLookupEmptyKey(t *testing.T) {
	b := newPLBackend(t, plServe(200, plCarrier, 0))
	l := newPL(t, b.srv.URL, nil)
	if _, err := l.Lookup(context.Background(), "", "", plHeaders()); err == nil {
		t.Error("empty key accepted")
	}
	if b.calls.Load() != 0 {
		t.Error("empty key reached the backend")
	}
}

func TestLookupErrorText(t *testing.T) {
	inner := errors.New("backend answered HTTP 500")
	e := &LookupError{Status: 503, Reason: ReasonPrincipalLookupFailed, Err: inner}
	if got := e.Error(); got != "credential: principal_lookup_failed: backend answered HTTP 500" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(e, inner) {
		t.Error("Unwrap does not reach the cause")
	}
	if got := (&LookupError{Status: 401, Reason: ReasonPrincipalUnauthenticated}).Error(); got != "credential: principal_unauthenticated" {
		t.Errorf("Error() without cause = %q", got)
	}
}

func BenchmarkPrincipalLookupCached(b *testing.B) {
	be := newPLBackend(b, plServe(200, plCarrier, 0))
	l := newPL(b, be.srv.URL, nil)
	ctx := context.Background()
	h := plHeaders()
	if _, err := l.Lookup(ctx, "k", "/Cust12345", h); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Lookup(ctx, "k", "/Cust12345", h); err != nil {
			b.Fatal(err)
		}
	}
	if n := be.calls.Load(); n != 1 {
		b.Fatalf("backend calls = %d, want 1", n)
	}
}

func BenchmarkPrincipalLookupCachedParallel(b *testing.B) {
	be := newPLBackend(b, plServe(200, plCarrier, 0))
	l := newPL(b, be.srv.URL, nil)
	ctx := context.Background()
	h := plHeaders()
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
