package resetguard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"go.uber.org/zap/zaptest/observer"
)

// Unit tests of the guard's steps (serve.go, decide.go) through the real,
// provisioned handler: each refusal path ends in finish with its status,
// body, headers, one record and the {http.reset_guard.decision}
// placeholder, and never reaches the next handler.

// stepRefusal is one request refused by one step.
type stepRefusal struct {
	name string
	// setup provisions the handler; nil: the test policy alone.
	setup  func(t *testing.T) (*Handler, *observer.ObservedLogs)
	method string      // "": POST
	path   string      // "": /api/v1/ChatSession/427/Reset
	header http.Header // replaces the default Authorization: Basic bot:pw

	status   int
	reasons  []string    // the body's Reasons; event.reason is their join
	decision string      // {http.reset_guard.decision}
	respond  http.Header // response headers the refusal carries
	// challenges are the WWW-Authenticate values, exactly; nil: none.
	challenges []string
	// fallback: the durable file failed, so the record is marked as
	// kept on the Caddy logger only.
	fallback bool
}

const (
	challengeBasic    = `Basic realm="SuperOffice", charset="UTF-8"`
	challengeSoTicket = `SoTicket realm="SuperOffice"`
	challengeBearer   = `Bearer realm="SuperOffice"`
)

// TestStepRefusalsOfTheRequest: the audit check, the method and the
// session id refuse before any credential is read.
func TestStepRefusalsOfTheRequest(t *testing.T) {
	runStepRefusals(t, []stepRefusal{
		{name: "audit file unavailable", setup: auditUnavailable, status: 503,
			reasons: []string{"audit_unavailable"}, decision: "refused", fallback: true},
		{name: "method override", header: basicHeader("bot", http.Header{"X-Http-Method-Override": {"GET"}}),
			status: 400, reasons: []string{"method_override_refused"}, decision: "refused"},
		{name: "not a POST", method: http.MethodGet, status: 405, reasons: []string{"method_not_allowed"},
			decision: "refused", respond: http.Header{"Allow": {"POST"}}},
		{name: "session id zero", path: "/api/v1/ChatSession/0/Reset", status: 400,
			reasons: []string{"bad_session_id"}, decision: "refused"},
		{name: "session id past int32", path: "/api/v1/ChatSession/2147483648/Reset", status: 400,
			reasons: []string{"bad_session_id"}, decision: "refused"},
	})
}

// TestStepRefusalsOfTheCredential: 401s name every accepted scheme; only
// a refused bearer token says error="invalid_token".
func TestStepRefusalsOfTheCredential(t *testing.T) {
	runStepRefusals(t, []stepRefusal{
		{name: "no credentials", header: http.Header{}, status: 401, reasons: []string{"missing_credentials"},
			decision: "refused", challenges: []string{challengeBasic, challengeSoTicket, challengeBearer}},
		{name: "malformed bearer", header: http.Header{"Authorization": {"Bearer not-a-token"}}, status: 401,
			reasons: []string{"malformed_bearer"}, decision: "refused",
			challenges: []string{challengeBasic, challengeSoTicket, challengeBearer + `, error="invalid_token"`}},
		{name: "online token of another tenant", path: "/Cust1/api/v1/ChatSession/427/Reset",
			header: http.Header{"Authorization": {"Bearer 8A:Cust2.token"}}, status: 401,
			reasons: []string{"tenant_mismatch"}, decision: "refused",
			challenges: []string{challengeBasic, challengeSoTicket, challengeBearer + `, error="invalid_token"`}},
	})
}

// TestStepRefusalsOfThePolicy: a deny carries the policy's status,
// reasons and headers; a policy that cannot decide is a 503.
func TestStepRefusalsOfThePolicy(t *testing.T) {
	runStepRefusals(t, []stepRefusal{
		{name: "policy deny", header: basicHeader("mallory", nil), status: 403, reasons: []string{"mallory_refused"},
			decision: "deny", respond: http.Header{"X-Denied-By": {"policy"}}},
		{name: "policy deny with its own status", path: "/api/v1/ChatSession/666/Reset", status: 423,
			reasons: []string{"session_locked"}, decision: "deny"},
		{name: "policy error", path: "/api/v1/ChatSession/13/Reset", status: 503, reasons: []string{"policy_error"},
			decision: "error"},
		// A policy's own 401 carries the policy's challenge only: the
		// guard challenges credentials it refused, not a policy's deny.
		{name: "policy deny with 401", setup: policyUnauthorized, status: 401, reasons: []string{"step_up_required"},
			decision: "deny", respond: http.Header{"Www-Authenticate": {`Bearer realm="step-up"`}},
			challenges: []string{`Bearer realm="step-up"`}},
	})
}

// policyUnauthorized provisions a handler whose policy denies with 401
// and its own challenge.
func policyUnauthorized(t *testing.T) (*Handler, *observer.ObservedLogs) {
	dir := t.TempDir()
	rego := `package resetguard

decision := {"allow": false, "reasons": ["step_up_required"], "status": 401,
	"headers": {"WWW-Authenticate": "Bearer realm=\"step-up\""}}
`
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	return provisioned(t, &Handler{Policy: PolicyConfig{Paths: []string{dir}, Query: "data.resetguard.decision"}})
}

func runStepRefusals(t *testing.T, cases []stepRefusal) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup := tc.setup
			if setup == nil {
				setup = func(t *testing.T) (*Handler, *observer.ObservedLogs) {
					return provisioned(t, &Handler{Policy: testPolicy()})
				}
			}
			h, logs := setup(t)
			w, repl, forwarded := serveStep(t, h, tc.request())
			if forwarded {
				t.Error("a refused request reached the next handler")
			}
			if w.Code != tc.status {
				t.Errorf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			checkStepBody(t, w, tc.status, tc.reasons)
			checkStepHeaders(t, w, tc)
			rec, ev := soleRecord(t, logs)
			checkEvent(t, ev, strings.Join(tc.reasons, ","), "failure", "denied")
			if rg, _ := rec["resetguard"].(map[string]any); (rg["audit_fallback"] == true) != tc.fallback {
				t.Errorf("resetguard.audit_fallback = %v, want %v", rg["audit_fallback"], tc.fallback)
			}
			if got, _ := repl.GetString("http.reset_guard.decision"); got != tc.decision {
				t.Errorf("{http.reset_guard.decision} = %q, want %q", got, tc.decision)
			}
		})
	}
}

func (tc stepRefusal) request() *http.Request {
	method, path, header := tc.method, tc.path, tc.header
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/api/v1/ChatSession/427/Reset"
	}
	if header == nil {
		header = basicHeader("bot", nil)
	}
	r := httptest.NewRequest(method, path, nil)
	r.Header = header.Clone()
	return r
}

// basicHeader is extra with Authorization: Basic user:pw added.
func basicHeader(user string, extra http.Header) http.Header {
	h := extra.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":pw")))
	return h
}

// serveStep runs r through h as Caddy's server would set it up, with a
// next handler that answers the reset, and reports whether it ran.
func serveStep(t *testing.T, h *Handler, r *http.Request) (*httptest.ResponseRecorder, *caddy.Replacer, bool) {
	t.Helper()
	w := httptest.NewRecorder()
	repl := caddy.NewReplacer()
	r = caddyhttp.PrepareRequest(r, repl, w, nil)
	forwarded := false
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		forwarded = true
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ChatSessionId": 427}`))
		return nil
	})
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w, repl, forwarded
}

// checkStepBody: the client's body is the guard's error shape with the
// refusal's status and reasons, and the request id of the response.
func checkStepBody(t *testing.T, w *httptest.ResponseRecorder, status int, reasons []string) {
	t.Helper()
	var b errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body %s: %v", w.Body, err)
	}
	if !slices.Equal(b.Reasons, reasons) {
		t.Errorf("body Reasons %q, want %q", b.Reasons, reasons)
	}
	if !b.Error || b.Status != status || b.ErrorSource != "ResetGuard" || b.ErrorType != errorType(status) {
		t.Errorf("body %+v, want the guard's error for %d", b, status)
	}
	if id := w.Header().Get("X-Request-Id"); id == "" || b.RequestID != id {
		t.Errorf("body RequestId %q, X-Request-Id %q: want one non-empty id", b.RequestID, id)
	}
}

// checkStepHeaders: the refusal's own headers, and WWW-Authenticate
// exactly as wanted (none outside a 401).
func checkStepHeaders(t *testing.T, w *httptest.ResponseRecorder, tc stepRefusal) {
	t.Helper()
	for k, want := range tc.respond {
		if got := w.Header().Values(k); !slices.Equal(got, want) {
			t.Errorf("response header %s = %q, want %q", k, got, want)
		}
	}
	got := w.Header().Values("WWW-Authenticate")
	if !slices.Equal(got, tc.challenges) {
		t.Errorf("WWW-Authenticate %q, want %q", got, tc.challenges)
	}
	invalid := strings.Contains(strings.Join(got, "\n"), "invalid_token")
	if wantInvalid := strings.Contains(strings.Join(tc.challenges, "\n"), "invalid_token"); invalid != wantInvalid {
		t.Errorf("WWW-Authenticate %q: error=\"invalid_token\" present %v, want %v", got, invalid, wantInvalid)
	}
}

// entityFixture is the ChatSessionEntity a backend returns on a reset.
func entityFixture(t testing.TB) []byte {
	t.Helper()
	entity, err := os.ReadFile("testdata/entities/reset.json")
	if err != nil {
		t.Fatal(err)
	}
	return entity
}

// soleRecord fails the test unless logs hold exactly one audit record,
// and returns it with its event object.
func soleRecord(t testing.TB, logs *observer.ObservedLogs) (rec, event map[string]any) {
	t.Helper()
	if logs.Len() != 1 {
		t.Fatalf("%d audit records, want 1", logs.Len())
	}
	rec = logs.All()[0].ContextMap()
	event, _ = rec["event"].(map[string]any)
	return rec, event
}

// checkEvent compares event.reason ("": none), event.outcome and
// event.type.
func checkEvent(t *testing.T, ev map[string]any, reason, outcome, typ string) {
	t.Helper()
	gotReason, _ := ev["reason"].(string)
	if _, present := ev["reason"]; present == (reason == "") || gotReason != reason ||
		ev["outcome"] != outcome || fmt.Sprint(ev["type"]) != "["+typ+"]" {
		t.Errorf("event reason %v outcome %v type %v, want %s %s [%s]", ev["reason"], ev["outcome"], ev["type"], reason, outcome, typ)
	}
}

// auditUnavailable provisions a handler with a durable audit file, then
// breaks the disk under it as the integration suite does: the directory
// goes away and a regular file takes its name (a read-only mode would not
// stop root).
func auditUnavailable(t *testing.T) (*Handler, *observer.ObservedLogs) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	h, logs := provisioned(t, &Handler{Policy: testPolicy(),
		Audit: &AuditConfig{File: &AuditFile{Path: filepath.Join(dir, "audit.log")}}})
	t.Cleanup(func() { _ = h.Cleanup() })
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// TestRecordUserPrecedence: the record's user fields come from the most
// specific fact known: the principal over the credential over the path's
// tenant.
func TestRecordUserPrecedence(t *testing.T) {
	jwtID, sign := jwtIdentity(t)
	backendID := principalBackend(t)
	tests := []struct {
		name     string
		identity *Identity
		path     string
		authz    string
		want     map[string]any // the record's user object; nil: none
		source   string         // resetguard.principal_source
	}{
		{name: "basic user, path tenant", path: "/Cust12345/api/v1/ChatSession/427/Reset", authz: basicAuthz("bot"),
			want: map[string]any{"name": "bot", "domain": "Cust12345"}, source: "none"},
		{name: "basic user, onsite path", path: "/SuperOffice/api/v1/ChatSession/427/Reset", authz: basicAuthz("bot"),
			want: map[string]any{"name": "bot"}, source: "none"},
		{name: "online token tenant, no path tenant", path: "/api/v1/ChatSession/427/Reset", authz: "Bearer 8A:cust777.token",
			want: map[string]any{"domain": "Cust777"}, source: "none"},
		{name: "backend principal over basic user and path tenant", identity: backendID, path: "/cust999/api/v1/ChatSession/427/Reset",
			authz: basicAuthz("bot"), want: map[string]any{"id": "9", "name": "chatbot", "domain": "Cust999"}, source: "backend"},
		{name: "backend principal subject over basic user", identity: backendID, path: "/Cust12345/api/v1/ChatSession/427/Reset",
			authz: basicAuthz("svc"), want: map[string]any{"name": "SVC7", "domain": "Cust12345"}, source: "backend"},
		{name: "jwt principal over path tenant", identity: jwtID, path: "/CUST999/api/v1/ChatSession/427/Reset",
			authz: "Bearer " + sign(map[string]any{"tenant": "cust999", "aid": "42"}),
			want:  map[string]any{"id": "42", "name": "svc-bot", "domain": "Cust999"}, source: "jwt"},
		{name: "jwt associate id past int32 kept whole", identity: jwtID, path: "/Cust12345/api/v1/ChatSession/427/Reset",
			authz: "Bearer " + sign(map[string]any{"aid": "4294967338"}),
			want:  map[string]any{"id": "4294967338", "name": "svc-bot", "domain": "Cust12345"}, source: "jwt"},
		{name: "jwt without tenant claim, path tenant", identity: jwtID, path: "/Cust12345/api/v1/ChatSession/427/Reset",
			authz: "Bearer " + sign(nil), want: map[string]any{"name": "svc-bot", "domain": "Cust12345"}, source: "jwt"},
		{name: "xsrf on an onsite path: no user", path: "/SuperOffice/api/v1/ChatSession/427/Reset", source: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy(), Identity: tt.identity})
			r := httptest.NewRequest(http.MethodPost, tt.path, nil)
			if tt.authz != "" {
				r.Header.Set("Authorization", tt.authz)
			} else {
				r.Header.Set("X-XSRF-TOKEN", "xsrf-1")
				r.AddCookie(&http.Cookie{Name: "XSRF-TOKEN", Value: "xsrf-1"})
			}
			w, repl, forwarded := serveStep(t, h, r)
			if w.Code != http.StatusOK || !forwarded {
				t.Fatalf("status %d, forwarded %v: the test policy allows this reset: %s", w.Code, forwarded, w.Body)
			}
			rec, ev := soleRecord(t, logs)
			checkEvent(t, ev, "", "success", "allowed")
			checkRecordUser(t, rec, tt.want, tt.source)
			wantPrincipal, _ := tt.want["name"].(string)
			if got, _ := repl.GetString("http.reset_guard.principal"); got != wantPrincipal {
				t.Errorf("{http.reset_guard.principal} = %q, want %q", got, wantPrincipal)
			}
		})
	}
}

// TestTenantMismatch: a verified identity of another Online tenant than
// the path's is refused before the policy, whichever way it was
// established; the guard would otherwise decide for one tenant a reset
// the backend performs in another.
func TestTenantMismatch(t *testing.T) {
	jwtID, sign := jwtIdentity(t)
	backendID := principalBackend(t)
	tests := []struct {
		name         string
		identity     *Identity
		authz        string
		invalidToken bool
	}{
		{name: "jwt tenant claim", identity: jwtID, authz: "Bearer " + sign(map[string]any{"tenant": "Cust999"}), invalidToken: true},
		{name: "backend principal's tenant", identity: backendID, authz: basicAuthz("bot")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := provisioned(t, &Handler{Policy: testPolicy(), Identity: tt.identity})
			r := httptest.NewRequest(http.MethodPost, "/Cust12345/api/v1/ChatSession/427/Reset", nil)
			r.Header.Set("Authorization", tt.authz)
			w, _, forwarded := serveStep(t, h, r)
			if w.Code != http.StatusUnauthorized || forwarded {
				t.Fatalf("status %d, forwarded %v; want 401, not forwarded: %s", w.Code, forwarded, w.Body)
			}
			checkStepBody(t, w, http.StatusUnauthorized, []string{"tenant_mismatch"})
			if got := strings.Join(w.Header().Values("WWW-Authenticate"), ", "); strings.Contains(got, "invalid_token") != tt.invalidToken {
				t.Errorf("WWW-Authenticate %q, invalid_token wanted: %v", got, tt.invalidToken)
			}
			_, ev := soleRecord(t, logs)
			checkEvent(t, ev, "tenant_mismatch", "failure", "denied")
		})
	}
}

func checkRecordUser(t *testing.T, rec, want map[string]any, source string) {
	t.Helper()
	user, _ := rec["user"].(map[string]any)
	if len(want) == 0 && user != nil {
		t.Errorf("record user %v, want none", user)
	}
	if len(user) != len(want) {
		t.Errorf("record user %v, want %v", user, want)
	}
	for k, v := range want {
		if user[k] != v {
			t.Errorf("record user.%s = %v, want %v", k, user[k], v)
		}
	}
	if rg, _ := rec["resetguard"].(map[string]any); rg["principal_source"] != source {
		t.Errorf("resetguard.principal_source = %v, want %s", rg["principal_source"], source)
	}
}

func basicAuthz(user string) string { return basicHeader(user, nil).Get("Authorization") }

// principalBackend serves GET {prefix}/api/v1/User/currentPrincipal as
// SuperOffice would for two Basic users: "bot", a system user with a user
// name, id and tenant of its own, and "svc", known by its login alone.
func principalBackend(t *testing.T) *Identity {
	t.Helper()
	carriers := map[string]string{
		basicAuthz("bot"): `{"UserType": "SystemAssociate", "Associate": "SYSBOT", "AssociateId": 9, "UserName": "chatbot", "DatabaseContextIdentifier": "cust999"}`,
		basicAuthz("svc"): `{"UserType": "SystemAssociate", "Associate": "SVC7"}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := carriers[r.Header.Get("Authorization")]
		if !ok || !strings.HasSuffix(r.URL.Path, "/api/v1/User/currentPrincipal") {
			http.Error(w, "unknown", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(c))
	}))
	t.Cleanup(srv.Close)
	return &Identity{PrincipalLookup: &PrincipalLookupIdentity{Upstream: srv.URL}}
}

// jwtIdentity is an Identity verifying ES256 tokens against a JWKS file
// holding one fresh key, and a signer of valid tokens for subject
// "svc-bot" with extra claims; the tenant claim is "tenant", the
// associate id claim "aid".
func jwtIdentity(t *testing.T) (*Identity, func(extra map[string]any) string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	const iss, aud = "https://idp.test", "resetguard"
	id := &Identity{JWT: &JWTIdentity{Issuer: iss, Audiences: []string{aud}, JWKSFile: jwks,
		TenantClaim: "tenant", AssociateIDClaim: "aid"}}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(extra map[string]any) string {
		now := time.Now()
		std := jwt.Claims{Issuer: iss, Audience: jwt.Audience{aud}, Subject: "svc-bot",
			Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now)}
		b := jwt.Signed(sig).Claims(std)
		if extra != nil {
			b = b.Claims(extra)
		}
		tok, err := b.Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	return id, sign
}
