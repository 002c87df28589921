// Package superoffice is the guard's one way of talking to a SuperOffice
// backend and of reading what it answers: the client behind the principal
// and session lookups (URL building, the caller's credential headers,
// bounded and drained bodies, redirects refused) and the decoding of the
// ChatSessionEntity, once per response, into the audit-safe facts, the
// opt-in customer fields and the policy's view of the session.
//
// Every lookup failure is a *refusal.Refusal carrying the status and
// reason the client is told; none of their texts holds a header value.
package superoffice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds one backend call when Config.Timeout is 0.
const DefaultTimeout = 2 * time.Second

// MaxBody bounds what is read of a lookup's answer: a principal or an
// entity is a few KiB, and the bound keeps a misbehaving backend from
// making the gateway buffer without limit.
const MaxBody = 1 << 20

// maxDrain is how much of an unread body is discarded so that the
// connection can be reused; a longer one is cut off with the connection.
const maxDrain = 64 << 10

// credentialHeaders are the caller's headers that carry its credential.
// Only these are sent, so a lookup authenticates exactly as the caller
// does and nothing else of the request (which the policy has not yet
// allowed) reaches the backend.
var credentialHeaders = [...]string{"Authorization", "Cookie", "X-Xsrf-Token", "So-Apptoken"}

// Config configures a Client.
type Config struct {
	// Upstream is the backend's base URL: http(s)://host[:port], with an
	// optional trailing slash and nothing else.
	Upstream string
	// Timeout bounds one call, body included; 0 means DefaultTimeout.
	Timeout time.Duration
	// HTTPClient sends the calls; nil means one sharing a transport with
	// every other Client. It is copied and made not to follow redirects:
	// a redirect would replay the caller's credential headers to
	// wherever the backend points.
	HTTPClient *http.Client
}

// Client sends the guard's own GET requests to one backend, each with the
// caller's credential headers. It is safe for concurrent use.
type Client struct {
	base    url.URL
	http    *http.Client
	timeout time.Duration
}

// NewClient checks cfg and returns its client.
func NewClient(cfg Config) (*Client, error) {
	base, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("superoffice: timeout must not be negative")
	}
	c := &http.Client{Transport: sharedTransport()}
	if cfg.HTTPClient != nil {
		cp := *cfg.HTTPClient
		c = &cp
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Client{base: base, http: c, timeout: timeout}, nil
}

// sharedTransport is http.DefaultTransport with more idle connections per
// host, shared by every Client: lookups go to one or two backends, the
// default of 2 would make a burst of distinct callers reconnect, and a
// transport per config reload would strand its idle connections.
var sharedTransport = sync.OnceValue(func() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return http.DefaultTransport
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 32
	return t
})

// parseUpstream accepts scheme://host[:port] with an optional trailing
// slash. User info is refused because it would put a credential in the
// configuration and in every error that quotes the URL (and Go's client
// would send it whenever the caller has no Authorization header); that
// refusal does not echo the URL.
func parseUpstream(s string) (url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, errors.New("superoffice: upstream is not a URL")
	}
	if u.User != nil {
		return url.URL{}, errors.New("superoffice: upstream must not contain user info")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return url.URL{}, fmt.Errorf("superoffice: upstream %q: want http(s)://host[:port]", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return url.URL{}, fmt.Errorf("superoffice: upstream %q: want no path, query or fragment", s)
	}
	return url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// target returns the backend URL of path under the caller's prefix. prefix
// is the decoded path before /api ("" or e.g. "/Cust12345"); it is
// escaped here. A "." or ".." segment, an empty one, or a backslash
// (which IIS reads as '/') is refused, so that no lookup can be steered to
// another route than the one named.
func (c *Client) target(prefix, path string) (*url.URL, error) {
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" && prefix[0] != '/' {
		return nil, errors.New("superoffice: path prefix must start with '/'")
	}
	full := prefix + path
	if strings.IndexByte(full, '\\') >= 0 {
		return nil, errors.New("superoffice: path has a backslash")
	}
	for seg := range strings.SplitSeq(strings.TrimPrefix(full, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return nil, errors.New("superoffice: path has an empty or dot segment")
		}
	}
	u := c.base
	u.Path = full
	return &u, nil
}

// CredentialHeaders returns a copy of the caller's credential headers
// (Authorization, Cookie, X-XSRF-TOKEN, SO-AppToken) and nothing else:
// for a call that may outlive the request whose header map it read.
func CredentialHeaders(from http.Header) http.Header {
	h := make(http.Header, len(credentialHeaders)+1)
	for _, name := range credentialHeaders {
		if vs := from.Values(name); len(vs) > 0 {
			h[name] = slices.Clone(vs)
		}
	}
	return h
}

// get sends GET {upstream}{prefix}{path} with the caller's credential
// headers and Accept: application/json, within the client's timeout. The
// body is read (at most MaxBody) only for a 200; any other status is
// returned with a nil body. Errors name the URL and what failed, never a
// header value or the body.
func (c *Client) get(ctx context.Context, prefix, path string, from http.Header) (int, []byte, error) {
	target, err := c.target(prefix, path)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("superoffice: building the request: %w", err)
	}
	req.Header = CredentialHeaders(from)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL holds no secret; the transport's error does not quote
		// request headers.
		return 0, nil, fmt.Errorf("superoffice: %w", err)
	}
	defer drain(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("superoffice: reading the answer: %w", err)
	}
	if len(body) > MaxBody {
		return resp.StatusCode, nil, fmt.Errorf("superoffice: answer exceeds %d bytes", MaxBody)
	}
	return resp.StatusCode, body, nil
}

// drain reads a little of what is left so that the connection can be
// reused, never an unbounded error body, and closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

// answered describes a status the lookup did not expect, for a
// refusal's cause.
func answered(status int) error {
	return fmt.Errorf("superoffice: backend answered HTTP %d", status)
}
