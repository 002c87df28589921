package superoffice

import (
	"context"
	"net/http"
	"testing"

	"github.com/resetguard/caddy-resetguard/internal/refusal"
	sotest "github.com/resetguard/caddy-resetguard/internal/superoffice/superofficetest"
)

// tCarrierWant is what sotest.Carrier decodes to.
var tCarrierWant = &Carrier{
	Associate:                 "JANE",
	AssociateID:               5,
	UserType:                  "InternalAssociate",
	RoleName:                  "Chat agent",
	UserName:                  "jane",
	DatabaseContextIdentifier: "Cust12345",
	Licenses:                  []string{"USER", "CHAT"},
	FunctionRights:            []string{"allow-chat-reset", "chat-admin"},
}

func newTestClient(t testing.TB, upstream string, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{Upstream: upstream}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// lookup is one of the client's calls, so that the shared behaviour is
// tested for each.
type lookup struct {
	name string
	// path is what the backend sees for prefix "".
	path string
	// body is a good 200 answer.
	body string
	call func(c *Client, ctx context.Context, prefix string, from http.Header) error
	// failed is the reason of a failed call.
	failed string
}

// lookups returns both calls; the session answer is the reset fixture.
func lookups(t testing.TB) []lookup {
	return []lookup{
		{
			name: "principal", path: "/api/v1/User/currentPrincipal", body: sotest.Carrier, failed: refusal.PrincipalLookupFailed,
			call: func(c *Client, ctx context.Context, prefix string, from http.Header) error {
				_, err := c.CurrentPrincipal(ctx, prefix, from)
				return err
			},
		},
		{
			name: "session", path: "/api/v1/ChatSession/427", body: string(readFixture(t, "reset.json")), failed: refusal.SessionLookupFailed,
			call: func(c *Client, ctx context.Context, prefix string, from http.Header) error {
				_, err := c.ChatSession(ctx, prefix, 427, from)
				return err
			},
		},
	}
}
