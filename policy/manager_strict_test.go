package policy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/bundletest"
)

// plainServer serves one bundle at any path with no ETag, as some bundle
// services (a plain file server behind a cache that strips it) do: every
// poll downloads the bundle again.
type plainServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	requests atomic.Int64
}

func newPlainServer(t *testing.T, body []byte) *plainServer {
	t.Helper()
	s := &plainServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		b := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *plainServer) set(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

// startPlain starts a Manager polling s every second for cfg's query,
// with cfg's local sources beside the remote bundle.
func startPlain(t *testing.T, s *plainServer, cfg Config) *Manager {
	t.Helper()
	r := &Remote{URL: s.URL, Resource: "b.tar.gz", MinDelay: time.Second, MaxDelay: time.Second}
	m, err := NewManager(context.Background(), cfg, r, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	return m
}

// TestRemoteBundleUnchangedNotReactivated: a service without ETags sends
// the same bundle on every poll; it is compiled and activated once, and a
// rejected one is rejected once.
func TestRemoteBundleUnchangedNotReactivated(t *testing.T) {
	s := newPlainServer(t, mustBuild(t, "v1", versioned("v1"), ""))
	m := startPlain(t, s, Config{Query: "data.resetguard.decision"})
	if reasonOf(t, m) != "v1" {
		t.Fatalf("after start: %+v", m.Status())
	}
	polls := s.requests.Load()
	waitFor(t, 10*time.Second, "two more polls", func() bool { return s.requests.Load() >= polls+2 })
	if st := m.Status(); st.Activations != 1 || st.Failures != 0 {
		t.Errorf("after %d downloads of one bundle: %d activations, %d failures; want 1 and 0", s.requests.Load(), st.Activations, st.Failures)
	}

	s.set(mustBuild(t, "v2-broken", map[string]string{"resetguard/policy.rego": brokenModule}, ""))
	waitFor(t, 5*time.Second, "the broken bundle to be rejected", func() bool { return m.Status().Failures == 1 })
	polls = s.requests.Load()
	waitFor(t, 10*time.Second, "two more polls", func() bool { return s.requests.Load() >= polls+2 })
	if st := m.Status(); st.Activations != 1 || st.Failures != 1 || st.Revision != "v1" {
		t.Errorf("the same broken bundle polled again: %+v; want 1 activation, 1 failure, v1 active", st)
	}

	// Back to a bundle seen before (v1): a change from the last one, so
	// it is compiled and activated again.
	s.set(mustBuild(t, "v1", versioned("v1"), ""))
	waitFor(t, 5*time.Second, "v1 again", func() bool { return m.Status().Activations == 2 })
}

// TestRemoteBundleOverLocalFilesRejected: a remote bundle whose roots
// cover the local files' package is rejected like a broken one (the
// previous policy, or none, stays); one with disjoint roots activates.
func TestRemoteBundleOverLocalFilesRejected(t *testing.T) {
	dir := policyDir(t, map[string]string{"p.rego": `package resetguard

default decision := {"allow": false, "reasons": ["remote_closed"]}

decision := {"allow": true, "reasons": ["remote_open"]} if data.remote_flag.open
`})
	overFiles := mustBuild(t, "over-files", map[string]string{
		"resetguard/allow.rego": "package resetguard\n\ndecision := {\"allow\": true, \"reasons\": [\"from_the_bundle\"]}\n",
	}, "")
	disjoint, err := bundletest.Build("disjoint", []string{"remote_flag"}, map[string]string{
		"remote_flag/flag.rego": "package remote_flag\n\nopen := true\n",
	}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	s := newPlainServer(t, overFiles)
	m := startPlain(t, s, Config{Paths: []string{dir}, Query: "data.resetguard.decision"})
	if m.Engine() != nil {
		t.Fatalf("a bundle over the files' package activated: %+v", m.Status())
	}
	if st := m.Status(); !strings.Contains(st.LastError, "claims data.resetguard") {
		t.Errorf("last error %q does not say what the bundle claims", st.LastError)
	}

	s.set(disjoint)
	waitFor(t, 5*time.Second, "the disjoint bundle", func() bool { return m.Engine() != nil })
	if got := reasonOf(t, m); got != "remote_open" {
		t.Fatalf("reason %q, want remote_open", got)
	}

	s.set(overFiles)
	waitFor(t, 5*time.Second, "the bundle over the files to be rejected again", func() bool { return m.Status().Failures == 2 })
	if got := reasonOf(t, m); got != "remote_open" || m.Status().Revision != m.Engine().Revision() {
		t.Errorf("after a rejected bundle: reason %q, status %+v; the previous policy must stay", got, m.Status())
	}
}
