package policy

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resetguard/caddy-resetguard/internal/bundletest"
)

// versioned is a policy that allows and names its version in the reasons.
func versioned(v string) map[string]string {
	return map[string]string{"resetguard/policy.rego": `package resetguard

decision := {"allow": true, "reasons": ["` + v + `"]}
`}
}

const brokenModule = "package resetguard\n\ndecision := {\"allow\": true, \"reasons\": [x]}\n" // x unsafe

func mustBuild(t *testing.T, rev string, modules map[string]string, key string) []byte {
	t.Helper()
	b, err := bundletest.Build(rev, []string{"resetguard"}, modules, key, "resetguard")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reasonOf(t *testing.T, m *Manager) string {
	t.Helper()
	e := m.Engine()
	if e == nil {
		return "<no engine>"
	}
	d, err := e.Eval(context.Background(), botInput().Value())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Reasons) == 0 {
		return ""
	}
	return d.Reasons[0]
}

// startRemote serves body (nil: 404) as a bundle and starts a Manager on
// it, polling every second with r's other settings and waiting up to wait
// for the first bundle. The manager stops, then the server closes, when
// the test ends.
func startRemote(t *testing.T, body []byte, r Remote, wait time.Duration) (*bundletest.Server, *Manager) {
	t.Helper()
	srv := bundletest.NewServer(body)
	t.Cleanup(srv.Close)
	r.URL, r.MinDelay, r.MaxDelay = srv.URL, time.Second, time.Second
	m, err := NewManager(context.Background(), Config{Query: "data.resetguard.decision"}, &r, wait, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	return srv, m
}

// waitFor polls cond for up to d: bundle polling runs on its own clock.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLocalBundles(t *testing.T) {
	dir := t.TempDir()
	tarball := filepath.Join(dir, "b.tar.gz")
	if err := os.WriteFile(tarball, mustBuild(t, "tar-7", versioned("from-tarball"), ""), 0o600); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, "bdir")
	if err := os.MkdirAll(filepath.Join(bdir, "resetguard"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, ".manifest"), []byte(`{"revision": "dir-3", "roots": ["resetguard"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bdir, "resetguard", "p.rego"), []byte(versioned("from-dir")["resetguard/policy.rego"]), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, wantRev, wantReason string
	}{
		{"tar.gz", tarball, "tar-7", "from-tarball"},
		{"directory", bdir, "dir-3", "from-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewManager(context.Background(), Config{Bundles: []string{tt.path}, Query: "data.resetguard.decision"}, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Engine().Revision(); got != tt.wantRev {
				t.Errorf("revision %q, want %q", got, tt.wantRev)
			}
			if got := reasonOf(t, m); got != tt.wantReason {
				t.Errorf("reason %q, want %q", got, tt.wantReason)
			}
		})
	}
	t.Run("files and a bundle together", func(t *testing.T) {
		extra := filepath.Join(dir, "extra")
		if err := os.MkdirAll(extra, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(extra, "x.rego"), []byte("package other\n\nx := 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := New(context.Background(), Config{Paths: []string{extra}, Bundles: []string{tarball}, Query: "data.resetguard.decision"})
		if err != nil {
			t.Fatal(err)
		}
		if rev := e.Revision(); !strings.HasPrefix(rev, "sha256:") || !strings.HasSuffix(rev, "+tar-7") {
			t.Errorf("revision %q, want the files' hash + the bundle's revision", rev)
		}
	})
	t.Run("corrupt tarball", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.tar.gz")
		if err := os.WriteFile(bad, []byte("not a tarball"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(context.Background(), Config{Bundles: []string{bad}}); err == nil || !strings.Contains(err.Error(), "bad.tar.gz") {
			t.Fatalf("err = %v, want one naming the bundle", err)
		}
	})
}

func TestRemoteBundleActivationAndRejection(t *testing.T) {
	srv, m := startRemote(t, mustBuild(t, "v1", versioned("v1"), ""), Remote{Resource: "bundles/resetguard.tar.gz"}, 10*time.Second)
	if m.Engine() == nil || m.Engine().Revision() != "v1" || reasonOf(t, m) != "v1" {
		t.Fatalf("after start: engine %v, status %+v", m.Engine(), m.Status())
	}

	srv.Set(mustBuild(t, "v2", versioned("v2"), ""))
	waitFor(t, 5*time.Second, "v2 to activate", func() bool { return m.Status().Revision == "v2" })
	if reasonOf(t, m) != "v2" {
		t.Fatal("v2 active but not deciding")
	}

	before := m.Status().Failures
	srv.Set(mustBuild(t, "v3-broken", map[string]string{"resetguard/policy.rego": brokenModule}, ""))
	waitFor(t, 5*time.Second, "the broken bundle to be rejected", func() bool { return m.Status().Failures > before })
	st := m.Status()
	if st.Revision != "v2" || reasonOf(t, m) != "v2" {
		t.Fatalf("after a broken bundle: %+v; the previous policy must stay active", st)
	}
	if !strings.Contains(st.LastError, "policy.rego") {
		t.Errorf("last error %q should name the failing file", st.LastError)
	}
	if st.Activations != 2 {
		t.Errorf("activations = %d, want 2", st.Activations)
	}
}

func TestRemoteBundleNotReady(t *testing.T) {
	srv, m := startRemote(t, nil, Remote{Resource: "b.tar.gz"}, 300*time.Millisecond) // 404 until a bundle is set
	if m.Engine() != nil {
		t.Fatal("no bundle served yet: the manager must have no engine (requests fail closed)")
	}
	srv.Set(mustBuild(t, "late", versioned("late"), ""))
	waitFor(t, 5*time.Second, "the late bundle", func() bool { return m.Engine() != nil })
	if reasonOf(t, m) != "late" {
		t.Fatal("late bundle not deciding")
	}
}

func TestRemoteBundleSignature(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))

	srv, m := startRemote(t, mustBuild(t, "signed-1", versioned("signed-1"), privPEM), Remote{Resource: "b.tar.gz", PublicKey: pubPEM}, 10*time.Second)
	if m.Engine() == nil || m.Engine().Revision() != "signed-1" {
		t.Fatalf("a correctly signed bundle must activate: %+v", m.Status())
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"unsigned", mustBuild(t, "unsigned-2", versioned("unsigned-2"), "")},
		{"signed by another key", mustBuild(t, "forged-3", versioned("forged-3"), otherPEM)},
	} {
		before := m.Status().Failures
		srv.Set(tc.body)
		waitFor(t, 5*time.Second, tc.name+" bundle to be rejected", func() bool { return m.Status().Failures > before })
		if rev := m.Status().Revision; rev != "signed-1" {
			t.Fatalf("%s bundle activated (revision %s)", tc.name, rev)
		}
	}
}
