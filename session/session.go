// Package session fetches the current ChatSessionEntity from the backend
// before a reset is decided, so that a policy can depend on the session's
// state and owner. The caller's own credentials are used: the backend
// decides what the caller may read.
package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Redacted lists the entity fields that never reach a policy: the
// customer's session secret, chat text and personal data.
var Redacted = []string{
	"SessionKey", "FirstMessage", "LastMessage", "Person",
	"CustomerName", "CustomerEmail", "CustomerPhone", "CustomerHost", "CustomerAlias", "CustomerCompanyName",
}

// credentialHeaders are copied from the caller's request to the lookup.
var credentialHeaders = []string{"Authorization", "Cookie", "X-Xsrf-Token", "So-Apptoken"}

// maxBody bounds the entity read.
const maxBody = 1 << 20

// Error is a failed lookup. Status is the status the guard answers with,
// Reason the stable reason word.
type Error struct {
	Status int
	Reason string
	Err    error
}

func (e *Error) Error() string { return "session lookup: " + e.Reason + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Lookup fetches sessions from one upstream.
type Lookup struct {
	// Upstream is the backend's base URL (scheme and host, no path).
	Upstream string
	// Timeout bounds one lookup.
	Timeout time.Duration
	// Client sends the lookups.
	Client *http.Client
}

// Fetch returns GET {Upstream}{prefix}/api/v1/ChatSession/{id} as a JSON
// object with the Redacted fields removed, sent with the credential
// headers of from. Any failure is an *Error.
func (l *Lookup) Fetch(ctx context.Context, prefix string, id int32, from http.Header) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	url := strings.TrimRight(l.Upstream, "/") + prefix + "/api/v1/ChatSession/" + strconv.Itoa(int(id))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", err}
	}
	for _, h := range credentialHeaders {
		for _, v := range from.Values(h) {
			req.Header.Add(h, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := l.Client.Do(req)
	if err != nil {
		// The URL holds no secret; the error does not echo headers.
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, &Error{http.StatusNotFound, "session_not_found", fmt.Errorf("backend answered %d", resp.StatusCode)}
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, &Error{resp.StatusCode, "session_lookup_refused", fmt.Errorf("backend answered %d", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", fmt.Errorf("backend answered %d", resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", fmt.Errorf("reading the entity: %w", err)}
	}
	if len(body) > maxBody {
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", errors.New("entity larger than 1 MiB")}
	}
	entity, err := decode(body)
	if err != nil {
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", err}
	}
	if got, _ := entity["ChatSessionId"].(json.Number); got.String() != strconv.Itoa(int(id)) {
		return nil, &Error{http.StatusServiceUnavailable, "session_lookup_failed", fmt.Errorf("backend returned session %q for %d", got, id)}
	}
	return entity, nil
}

// decode reads a JSON entity, keeping numbers exact, and removes the
// Redacted fields (matched case-insensitively, as the backend's keys are).
func decode(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var entity map[string]any
	if err := dec.Decode(&entity); err != nil {
		return nil, fmt.Errorf("decoding the entity: %w", err)
	}
	if entity == nil {
		return nil, errors.New("backend returned no entity")
	}
	for k := range entity {
		for _, r := range Redacted {
			if strings.EqualFold(k, r) {
				delete(entity, k)
			}
		}
	}
	return entity, nil
}
