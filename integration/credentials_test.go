package integration_test

// Credentials through the real gateway: each accepted scheme is forwarded
// unchanged and recorded by fingerprint; each malformed or mismatched one
// is refused with its challenge before the policy.

import (
	"net/http"
	"strings"
	"testing"
)

func TestResetCredentialSchemes(t *testing.T) {
	runCases(t, []itCase{
		{
			name: "allowed via basic", method: "POST", path: restReset, headers: botAuth,
			wantStatus: 200, wantForwarded: true,
			wantAudit: withFields(allowedRecord(427, "basic"), "user.name", "bot", "resetguard.chat_session.status", "InQueue",
				"resetguard.chat_session.user_associate_id", float64(9), "url.path", restReset),
			check: func(t *testing.T, _ *http.Response, _ []byte, rec map[string]any, got []received) {
				if h := got[0].Header.Get("X-ResetGuard-Decision"); h != "allow" {
					t.Errorf("policy header on upstream request = %q, want allow", h)
				}
				if h := got[0].Header.Get("Authorization"); h != botAuth["Authorization"] {
					t.Errorf("credential not forwarded unchanged: %q", h)
				}
				fp, _ := field(rec, "resetguard.credential.fingerprint").(string)
				if len(fp) != 32 {
					t.Errorf("fingerprint %q: want 32 hex chars", fp)
				}
			},
		},
		{
			name: "allowed via SoTicket (scheme upper case)", method: "POST", path: restReset,
			headers:    map[string]string{"Authorization": "SOTICKET 7T:dGlja2V0LXNlY3JldA==", "SO-AppToken": "app-token-secret"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "soticket"),
		},
		{
			name: "allowed via Online bearer token in its tenant", method: "POST", path: "/Cust12345/api/v1/ChatSession/427/Reset",
			headers:    map[string]string{"Authorization": "Bearer 8A:Cust12345.c2VjcmV0LXRva2Vu"},
			wantStatus: 200, wantForwarded: true, wantAudit: withFields(allowedRecord(427, "bearer"), "user.domain", "Cust12345"),
		},
		{
			name: "allowed via XSRF header and cookie", method: "POST", path: restReset,
			headers:    map[string]string{"X-XSRF-TOKEN": "xsrf-value-0001", "Cookie": "XSRF-TOKEN=xsrf-value-0001; other=1"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "xsrf"),
		},
	})
}

func TestResetCredentialRefusals(t *testing.T) {
	runCases(t, []itCase{
		{
			name: "no credentials", method: "POST", path: restReset,
			wantStatus: 401, wantReason: "missing_credentials", wantAudit: deniedRecord(401, "missing_credentials"),
			check: func(t *testing.T, resp *http.Response, _ []byte, _ map[string]any, _ []received) {
				if got := resp.Header.Values("WWW-Authenticate"); len(got) != 3 {
					t.Errorf("WWW-Authenticate = %q, want Basic, SoTicket and Bearer challenges", got)
				}
			},
		},
		{
			name: "XSRF header does not match cookie", method: "POST", path: restReset,
			headers:    map[string]string{"X-XSRF-TOKEN": "xsrf-value-0001", "Cookie": "XSRF-TOKEN=other-value"},
			wantStatus: 401, wantReason: "xsrf_mismatch", wantAudit: deniedRecord(401, "xsrf_mismatch"),
		},
		{
			name: "Online token for another tenant", method: "POST", path: "/Cust99999/api/v1/ChatSession/427/Reset",
			headers:    map[string]string{"Authorization": "Bearer 8A:Cust12345.c2VjcmV0LXRva2Vu"},
			wantStatus: 401, wantReason: "tenant_mismatch", wantAudit: deniedRecord(401, "tenant_mismatch"),
			check: func(t *testing.T, resp *http.Response, _ []byte, _ map[string]any, _ []received) {
				if !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), "|"), `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate lacks invalid_token: %q", resp.Header.Values("WWW-Authenticate"))
				}
			},
		},
	})
}
