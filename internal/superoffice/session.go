package superoffice

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
)

// chatSessionPath is the entity's route under the caller's prefix.
const chatSessionPath = "/api/v1/ChatSession/"

// sessionFailed is a lookup that could not read the session.
func sessionFailed(err error) *refusal.Refusal {
	return refusal.New(http.StatusServiceUnavailable, refusal.SessionLookupFailed, refusal.MessageSessionLookup).Wrap(err)
}

// ChatSession returns GET {upstream}{prefix}/api/v1/ChatSession/{id},
// asked with the caller's own credential headers so that the backend
// decides what the caller may read, as the policy input's session: a
// JSON object with exact numbers and the Redacted fields removed.
//
// A 404 is a 404 session_not_found refusal; a 401 or 403 is
// session_lookup_refused with that status; a refused prefix, timeout,
// network error, other status, oversized or undecodable body, or an
// entity for another id is a 503 session_lookup_failed. Every error is a
// *refusal.Refusal.
func (c *Client) ChatSession(ctx context.Context, prefix string, id int32, from http.Header) (map[string]any, error) {
	want := strconv.Itoa(int(id))
	status, body, err := c.get(ctx, prefix, chatSessionPath+want, from)
	switch {
	case err != nil:
		return nil, sessionFailed(err)
	case status == http.StatusNotFound:
		return nil, refusal.New(http.StatusNotFound, refusal.SessionNotFound, refusal.MessageSessionLookup).Wrap(answered(status))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, refusal.New(status, refusal.SessionLookupRefused, refusal.MessageSessionLookup).Wrap(answered(status))
	case status != http.StatusOK:
		return nil, sessionFailed(answered(status))
	}
	entity, err := decodePolicyEntity(body)
	if err != nil {
		return nil, sessionFailed(err)
	}
	if got, _ := entity["ChatSessionId"].(json.Number); got.String() != want {
		return nil, sessionFailed(fmt.Errorf("superoffice: backend returned session %q for %s", got, want))
	}
	return entity, nil
}
