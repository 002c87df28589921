// Package superofficetest is a stand-in SuperOffice backend for the tests
// of the packages that call one: a loopback server that counts the calls
// and connections it gets and keeps the requests, a caller's credential
// headers whose values must never show up in an error, and a realistic
// SoPrincipalCarrier.
package superofficetest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A caller's credential values. None of them may ever show up in an
// error text.
const (
	Ticket   = "SOTicket 7T:dGlja2V0LXNlY3JldC12YWx1ZQ=="
	Session  = "ASP.NET_SessionId=sess-secret-4711; XSRF-TOKEN=xsrf-secret-0815"
	XSRF     = "xsrf-secret-0815"
	AppToken = "apptoken-secret-42"
)

// secrets are the parts of the credential values an error must not hold.
var secrets = [...]string{"dGlja2V0LXNlY3JldC12YWx1ZQ", "sess-secret-4711", "xsrf-secret-0815", "apptoken-secret-42"}

// Carrier is a SoPrincipalCarrier as a SuperOffice backend returns it.
const Carrier = `{
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

// CallerHeaders is a caller's request headers: every credential header
// plus some that must not be forwarded.
func CallerHeaders() http.Header {
	h := http.Header{}
	h.Set("Authorization", Ticket)
	h.Set("Cookie", Session)
	h.Set("X-Xsrf-Token", XSRF)
	h.Set("So-Apptoken", AppToken)
	h.Set("X-Other", "must-not-be-forwarded")
	h.Set("Content-Type", "application/json")
	return h
}

// CheckNoSecrets fails t if err's text, in any format, holds a credential
// value of CallerHeaders.
func CheckNoSecrets(t testing.TB, err error) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("error text contains credential %q: %s", s, text)
			}
		}
	}
}

// Backend is a loopback backend that counts the calls and connections it
// gets and keeps a copy of each request.
type Backend struct {
	// URL is the backend's base URL.
	URL string

	calls, conns atomic.Int64
	mu           sync.Mutex
	reqs         []*http.Request
}

// NewBackend starts a backend answering with h; it stops with the test.
func NewBackend(t testing.TB, h http.HandlerFunc) *Backend {
	t.Helper()
	b := &Backend{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.calls.Add(1)
		b.mu.Lock()
		b.reqs = append(b.reqs, r.Clone(context.Background()))
		b.mu.Unlock()
		h(w, r)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	b.URL = srv.URL
	return b
}

// Calls is how many requests the backend got.
func (b *Backend) Calls() int64 { return b.calls.Load() }

// Conns is how many connections the backend accepted.
func (b *Backend) Conns() int64 { return b.conns.Load() }

// LastRequest is a copy of the latest request; it fails t if none came.
func (b *Backend) LastRequest(t testing.TB) *http.Request {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		t.Fatal("backend got no request")
	}
	return b.reqs[len(b.reqs)-1]
}

// Serve answers with status and a JSON body after delay, cut short if the
// client goes away so that closing the server never waits for it.
func Serve(status int, body string, delay time.Duration) http.HandlerFunc {
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
