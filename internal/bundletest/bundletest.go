// Package bundletest builds OPA bundles and serves them over HTTP with
// ETags, as a bundle service would, for the tests of the policy engine and
// of the gateway.
package bundletest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// Build returns a gzipped tar bundle holding modules (file name → Rego
// source) under the given manifest revision and roots. With signingKey
// (a PEM private key) the bundle carries a signature under keyID.
func Build(revision string, roots []string, modules map[string]string, signingKey, keyID string) ([]byte, error) {
	b := bundle.Bundle{
		Manifest: bundle.Manifest{Revision: revision, Roots: &roots},
		Data:     map[string]any{},
	}
	names := make([]string, 0, len(modules))
	for name := range modules {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b.Modules = append(b.Modules, bundle.ModuleFile{
			URL:  "/" + name,
			Path: "/" + name,
			Raw:  []byte(modules[name]),
		})
	}
	if signingKey != "" {
		if err := b.GenerateSignature(bundle.NewSigningConfig(signingKey, "RS256", ""), keyID, false); err != nil {
			return nil, err
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).DisableFormat(true).Write(b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Server serves one bundle at any path, answering If-None-Match with 304
// when the bundle has not changed.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	etag     string
	Requests atomic.Int64
}

// NewServer starts a Server on loopback serving body.
func NewServer(body []byte) *Server {
	s := &Server{}
	s.Set(body)
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Set replaces the served bundle.
func (s *Server) Set(body []byte) {
	sum := sha256.Sum256(body)
	s.mu.Lock()
	s.body, s.etag = body, `"`+hex.EncodeToString(sum[:8])+`"`
	s.mu.Unlock()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.Requests.Add(1)
	s.mu.Lock()
	body, etag := s.body, s.etag
	s.mu.Unlock()
	if body == nil {
		http.Error(w, "no bundle", http.StatusNotFound)
		return
	}
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(body)
}
