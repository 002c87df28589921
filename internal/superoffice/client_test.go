package superoffice

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	sotest "github.com/resetguard/caddy-resetguard/internal/superoffice/superofficetest"
)

func TestNewClientConfig(t *testing.T) {
	bad := []struct {
		name string
		cfg  Config
	}{
		{"empty upstream", Config{}},
		{"not http", Config{Upstream: "ftp://backend"}},
		{"no host", Config{Upstream: "http://"}},
		{"relative", Config{Upstream: "/api"}},
		{"path", Config{Upstream: "http://backend/superoffice"}},
		{"query", Config{Upstream: "http://backend?x=1"}},
		{"empty query", Config{Upstream: "http://backend?"}},
		{"fragment", Config{Upstream: "http://backend#x"}},
		{"opaque", Config{Upstream: "http:backend"}},
		{"user info", Config{Upstream: "http://user:pw-secret@backend"}},
		{"negative timeout", Config{Upstream: "http://backend", Timeout: -1}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewClient(c.cfg)
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("error quotes the upstream password: %v", err)
			}
		})
	}

	c, err := NewClient(Config{Upstream: "https://backend:8443/"})
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout != DefaultTimeout || c.base.String() != "https://backend:8443" {
		t.Errorf("defaults: timeout %v base %v", c.timeout, c.base.String())
	}
	if c.http.CheckRedirect == nil {
		t.Error("default client follows redirects")
	}

	// A supplied client is copied, not modified, and still made not to
	// follow redirects.
	own := &http.Client{}
	c, err = NewClient(Config{Upstream: "http://backend", HTTPClient: own, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if own.CheckRedirect != nil || c.http == own || c.http.CheckRedirect == nil || c.timeout != time.Second {
		t.Error("supplied client not copied and restricted, or timeout not kept")
	}
}

// TestClientPath: both lookups build their URL one way: the prefix
// escaped, and "."/".." or empty segments, a backslash or a relative
// prefix refused before anything is sent.
func TestClientPath(t *testing.T) {
	for _, lk := range lookups(t) {
		t.Run(lk.name, func(t *testing.T) {
			b := sotest.NewBackend(t, sotest.Serve(200, lk.body, 0))
			c := newTestClient(t, b.URL+"/", nil)
			good := []struct{ prefix, wantPath, wantEscaped string }{
				{"", lk.path, ""},
				{"/Cust12345", "/Cust12345" + lk.path, ""},
				{"/superoffice/", "/superoffice" + lk.path, ""},
				{"/a b/c?d", "/a b/c?d" + lk.path, "/a%20b/c%3Fd" + lk.path},
			}
			for _, g := range good {
				if err := lk.call(c, context.Background(), g.prefix, sotest.CallerHeaders()); err != nil {
					t.Fatalf("prefix %q: %v", g.prefix, err)
				}
				r := b.LastRequest(t)
				if r.URL.Path != g.wantPath || r.Method != http.MethodGet || r.URL.RawQuery != "" {
					t.Errorf("prefix %q: %s %q?%s, want GET %q", g.prefix, r.Method, r.URL.Path, r.URL.RawQuery, g.wantPath)
				}
				if g.wantEscaped != "" && r.URL.EscapedPath() != g.wantEscaped {
					t.Errorf("prefix %q: escaped path %q, want %q", g.prefix, r.URL.EscapedPath(), g.wantEscaped)
				}
			}

			calls := b.Calls()
			for _, prefix := range []string{"Cust1", "/../admin", "/a/./b", "/a//b", "/..", "/.", "/a/..", `/a\..`, `/a\b`} {
				err := lk.call(c, context.Background(), prefix, sotest.CallerHeaders())
				rf, ok := refusal.As(err)
				if !ok || rf.Status != http.StatusServiceUnavailable || rf.Reason() != lk.failed {
					t.Errorf("prefix %q: error %v, want 503 %s", prefix, err, lk.failed)
				}
			}
			if b.Calls() != calls {
				t.Error("a refused prefix reached the backend")
			}
		})
	}
}

// TestClientSendsOnlyCredentialHeaders: each lookup authenticates exactly
// as the caller, with nothing else of its request.
func TestClientSendsOnlyCredentialHeaders(t *testing.T) {
	for _, lk := range lookups(t) {
		t.Run(lk.name, func(t *testing.T) {
			b := sotest.NewBackend(t, sotest.Serve(200, lk.body, 0))
			c := newTestClient(t, b.URL, nil)
			from := sotest.CallerHeaders()
			from.Add("Cookie", "second=cookie-line")
			before := from.Clone()
			if err := lk.call(c, context.Background(), "", from); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(from, before) {
				t.Error("the lookup modified the caller's headers")
			}
			r := b.LastRequest(t)
			for _, name := range []string{"Authorization", "Cookie", "X-Xsrf-Token", "So-Apptoken"} {
				if got, want := r.Header.Values(name), from.Values(name); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if got := r.Header.Get("Accept"); got != "application/json" {
				t.Errorf("Accept = %q", got)
			}
			// Only the credential headers, Accept and what the Go client
			// always adds may reach the backend.
			allowed := map[string]bool{"Authorization": true, "Cookie": true, "X-Xsrf-Token": true, "So-Apptoken": true,
				"Accept": true, "User-Agent": true, "Accept-Encoding": true}
			for name := range r.Header {
				if !allowed[name] {
					t.Errorf("unexpected header %s: %q", name, r.Header.Values(name))
				}
			}
		})
	}
}

func TestCredentialHeaders(t *testing.T) {
	from := sotest.CallerHeaders()
	got := CredentialHeaders(from)
	want := http.Header{"Authorization": {sotest.Ticket}, "Cookie": {sotest.Session}, "X-Xsrf-Token": {sotest.XSRF}, "So-Apptoken": {sotest.AppToken}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	got["Cookie"][0] = "changed"
	if from.Get("Cookie") != sotest.Session {
		t.Error("the copy shares its values with the caller's headers")
	}
	if n := len(CredentialHeaders(http.Header{"X-Other": {"x"}})); n != 0 {
		t.Errorf("%d headers copied from a request without credentials", n)
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	for _, lk := range lookups(t) {
		target := sotest.NewBackend(t, sotest.Serve(200, lk.body, 0))
		b := sotest.NewBackend(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+lk.path, http.StatusFound)
		})
		for name, hc := range map[string]*http.Client{"default client": nil, "supplied client": {}} {
			t.Run(lk.name+"/"+name, func(t *testing.T) {
				c := newTestClient(t, b.URL, func(cfg *Config) { cfg.HTTPClient = hc })
				err := lk.call(c, context.Background(), "", sotest.CallerHeaders())
				rf, ok := refusal.As(err)
				if !ok || rf.Status != http.StatusServiceUnavailable || rf.Reason() != lk.failed {
					t.Errorf("error %v, want 503 %s", err, lk.failed)
				}
				sotest.CheckNoSecrets(t, err)
				if n := target.Calls(); n != 0 {
					t.Errorf("redirect target called %d times", n)
				}
			})
		}
	}
}

// TestClientBodyBound: an answer of exactly MaxBody bytes is read, one
// byte more is a failed lookup.
func TestClientBodyBound(t *testing.T) {
	for _, lk := range lookups(t) {
		// Padding inside the object keeps both answers valid JSON.
		head, tail := lk.body[:strings.LastIndexByte(lk.body, '}')], `, "Pad": "`
		for _, tc := range []struct {
			name string
			size int
			ok   bool
		}{{"at limit", MaxBody, true}, {"over limit", MaxBody + 1, false}} {
			t.Run(lk.name+"/"+tc.name, func(t *testing.T) {
				body := head + tail + strings.Repeat("a", tc.size-len(head)-len(tail)-2) + `"}`
				b := sotest.NewBackend(t, sotest.Serve(200, body, 0))
				c := newTestClient(t, b.URL, nil)
				err := lk.call(c, context.Background(), "", sotest.CallerHeaders())
				if tc.ok {
					if err != nil {
						t.Fatalf("body of exactly %d bytes: %v", len(body), err)
					}
					return
				}
				rf, ok := refusal.As(err)
				if !ok || rf.Reason() != lk.failed || !strings.Contains(err.Error(), "exceeds") {
					t.Errorf("body of %d bytes: error %v, want %s", len(body), err, lk.failed)
				}
			})
		}
	}
}

// TestClientDrains: a short unread answer is drained so the connection
// is reused; a long one is cut off rather than read to its end.
func TestClientDrains(t *testing.T) {
	for _, lk := range lookups(t) {
		for _, tc := range []struct {
			name      string
			size      int
			wantConns int64
		}{{"short error body", 8 << 10, 1}, {"long error body", 4 << 20, 2}} {
			t.Run(lk.name+"/"+tc.name, func(t *testing.T) {
				b := sotest.NewBackend(t, sotest.Serve(http.StatusInternalServerError, strings.Repeat("x", tc.size), 0))
				c := newTestClient(t, b.URL, func(cfg *Config) { cfg.HTTPClient = &http.Client{Transport: &http.Transport{}} })
				for range 2 {
					err := lk.call(c, context.Background(), "", sotest.CallerHeaders())
					if rf, ok := refusal.As(err); !ok || rf.Reason() != lk.failed {
						t.Fatalf("error %v, want %s", err, lk.failed)
					}
				}
				if n := b.Conns(); n != tc.wantConns {
					t.Errorf("%d connections for two lookups, want %d", n, tc.wantConns)
				}
			})
		}
	}
}

// TestClientTimeout: a slow backend fails the lookup within the timeout,
// and the cause says it was the deadline.
func TestClientTimeout(t *testing.T) {
	for _, lk := range lookups(t) {
		t.Run(lk.name, func(t *testing.T) {
			b := sotest.NewBackend(t, sotest.Serve(200, lk.body, 300*time.Millisecond))
			c := newTestClient(t, b.URL, func(cfg *Config) { cfg.Timeout = 50 * time.Millisecond })
			start := time.Now()
			err := lk.call(c, context.Background(), "", sotest.CallerHeaders())
			if d := time.Since(start); d > 250*time.Millisecond {
				t.Errorf("took %v", d)
			}
			if rf, ok := refusal.As(err); !ok || rf.Reason() != lk.failed || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v, want %s wrapping context.DeadlineExceeded", err, lk.failed)
			}
		})
	}
}
