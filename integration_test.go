package resetguard_test

// Integration suite: a real Caddy (in-process, through caddytest) with the
// reset_guard module and the real Rego policy in testdata/caddy, in front
// of a real HTTP backend on loopback, with audit records in a real file.
// caddytest runs one Caddy per process on fixed ports (admin 2999, HTTP
// 9080-9082), so every test that needs it lives in this file and shares
// one server started by startGateway.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/resetguard/caddy-resetguard/internal/bundletest"

	_ "github.com/resetguard/caddy-resetguard"
)

const (
	gatewayURL = "http://localhost:9080"
	dryRunURL  = "http://localhost:9081"
	deadURL    = "http://localhost:9082"
	// Two gateway instances sharing one bundle service.
	bundleURL1 = "http://localhost:9083"
	bundleURL2 = "http://localhost:9084"
	// A gateway that reads the session before deciding.
	lookupURL = "http://localhost:9085"
	// A gateway whose policy file the reload test rewrites.
	reloadURL = "http://localhost:9086"
	// A gateway that copies the {http.reset_guard.*} placeholders into
	// response headers.
	placeholdersURL = "http://localhost:9091"
	// A gateway whose refusals are written by the operator's
	// handle_errors route.
	handleErrorsURL = "http://localhost:9092"
)

// received is one request as the backend saw it.
type received struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// backend is the stand-in SuperOffice: it answers per the X-Backend-Mode
// header, and remembers what it received and what it sent per X-Test-Case.
type backend struct {
	srv *httptest.Server
	// principals answers GET /api/v1/User/currentPrincipal.
	principals func(http.ResponseWriter, *http.Request)
	entity     []byte // testdata/entities/reset.json
	xml        []byte // testdata/entities/reset.xml

	bombOnce sync.Once
	bomb     []byte

	mu   sync.Mutex
	got  map[string][]received
	sent map[string][]byte
}

var (
	idInPath     = regexp.MustCompile(`(?i)/chatsession/([0-9]+)/reset`)
	lookupInPath = regexp.MustCompile(`(?i)/chatsession/([0-9]+)$`)
)

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	tc := r.Header.Get("X-Test-Case")
	b.mu.Lock()
	b.got[tc] = append(b.got[tc], received{Method: r.Method, Path: r.URL.RawPath + "|" + r.URL.Path, Header: r.Header.Clone(), Body: body})
	b.mu.Unlock()

	if strings.HasSuffix(strings.ToLower(r.URL.Path), "/api/v1/user/currentprincipal") && b.principals != nil {
		b.principals(w, r)
		return
	}
	// Lookups carry only the caller's credential headers, never the
	// suite's X-Test-Case.
	if m := lookupInPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet && tc == "" {
		b.serveLookup(w, r, m[1], body)
		return
	}
	if d, err := time.ParseDuration(r.Header.Get("X-Backend-Delay")); err == nil {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
		}
	}
	id := "831"
	if m := idInPath.FindStringSubmatch(r.URL.Path); m != nil {
		id = m[1]
	}
	entity := bytes.Replace(b.entity, []byte(`"ChatSessionId": 427`), []byte(`"ChatSessionId": `+id), 1)
	var out []byte
	switch r.Header.Get("X-Backend-Mode") {
	case "xml":
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		out = bytes.Replace(b.xml, []byte("<ChatSessionId>427<"), []byte("<ChatSessionId>"+id+"<"), 1)
	case "gzip":
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(entity)
		_ = zw.Close()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		out = buf.Bytes()
	case "500":
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		out = []byte(`{"Error": true, "ErrorType": "SoServerException", "ErrorMessage": "boom", "ErrorSource": "test"}`)
		b.record(tc, out)
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write(out)
		return
	case "large":
		// A valid entity padded past the guard's 1 MiB hold.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		pad := strings.Repeat(" ", 2<<20)
		out = append(append([]byte{}, entity[:len(entity)-1]...), []byte(pad+"}")...)
	case "null":
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		out = []byte("null")
	case "endless":
		// A body that never ends, until the gateway hangs up.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		chunk := bytes.Repeat([]byte(" "), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		return
	case "short":
		// Content-Length promises more than is sent, then the
		// connection closes.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(entity)+5000))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(entity[:len(entity)/2])
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
			}
		}
		return
	case "gzip-bomb":
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		out = b.gzipBomb()
	case "hang":
		// Headers, then silence until the gateway gives up.
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		select {
		case <-time.After(20 * time.Second):
		case <-r.Context().Done():
		}
		return
	default:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		out = entity
	}
	b.record(tc, out)
	_, _ = w.Write(out)
}

// serveLookup answers the pre-reset GET of a session: session 77 is
// Closed, 78 fails, 79 does not exist, 80 is slower than the lookup
// timeout; the rest are InQueue.
func (b *backend) serveLookup(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	b.mu.Lock()
	b.got["lookup-"+id] = append(b.got["lookup-"+id], received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	b.mu.Unlock()
	switch id {
	case "78":
		http.Error(w, `{"Error": true}`, http.StatusInternalServerError)
		return
	case "79":
		http.Error(w, `{"Error": true, "ErrorType": "SoNotFoundException"}`, http.StatusNotFound)
		return
	case "80":
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		return
	}
	out := bytes.Replace(b.entity, []byte(`"ChatSessionId": 427`), []byte(`"ChatSessionId": `+id), 1)
	if id == "77" {
		out = bytes.Replace(out, []byte(`"Status": "InQueue"`), []byte(`"Status": "Closed"`), 1)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(out)
}

// gzipBomb is a valid entity padded with 32 MiB of spaces, gzip-compressed
// to a few dozen KiB: far past the guard's decode bound. Built once, as
// compressing it is slow under the race detector.
func (b *backend) gzipBomb() []byte {
	b.bombOnce.Do(func() {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b.entity[:bytes.LastIndexByte(b.entity, '}')])
		pad := bytes.Repeat([]byte(" "), 1<<20)
		for range 32 {
			_, _ = zw.Write(pad)
		}
		_, _ = zw.Write([]byte("}"))
		_ = zw.Close()
		b.bomb = buf.Bytes()
	})
	return b.bomb
}

func (b *backend) record(tc string, out []byte) {
	b.mu.Lock()
	b.sent[tc] = out
	b.mu.Unlock()
}

func (b *backend) requests(tc string) []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[tc]
}

func (b *backend) sentBody(tc string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sent[tc]
}

// gateway is the running Caddy and what it writes.
type gateway struct {
	backend   *backend
	identity  *identityFixture
	audit     *auditFixture
	bundles   *bundletest.Server
	config    string // the Caddyfile loaded
	reloadDir string // the policy directory of reloadURL
	auditPath string

	mu     sync.Mutex
	offset int64
}

var (
	gatewayOnce sync.Once
	theGateway  *gateway
)

// startGateway starts the shared Caddy once per test binary.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	gatewayOnce.Do(func() {
		entity, err := os.ReadFile("testdata/entities/reset.json")
		if err != nil {
			t.Fatal(err)
		}
		xmlEntity, err := os.ReadFile("testdata/entities/reset.xml")
		if err != nil {
			t.Fatal(err)
		}
		be := &backend{entity: entity, xml: xmlEntity, got: map[string][]received{}, sent: map[string][]byte{}}
		idf := newIdentityFixture(t)
		be.principals = idf.servePrincipal
		be.srv = httptest.NewServer(be)

		// A loopback port with nothing listening, for "upstream unreachable".
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := l.Addr().String()
		_ = l.Close()

		dir, err := os.MkdirTemp("", "resetguard-it-")
		if err != nil {
			t.Fatal(err)
		}
		auditPath := filepath.Join(dir, "audit.log")
		reloadDir := filepath.Join(dir, "reload-policy")
		if err := os.MkdirAll(reloadDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(reloadDir, "policy.rego"), []byte(bundlePolicy("reload-v1", true)["resetguard/policy.rego"]), 0o600); err != nil {
			t.Fatal(err)
		}
		policyDir, err := filepath.Abs("testdata/caddy")
		if err != nil {
			t.Fatal(err)
		}
		upstream := strings.TrimPrefix(be.srv.URL, "http://")
		v1, err := bundletest.Build("v1", []string{"resetguard"}, bundlePolicy("v1", true), "", "")
		if err != nil {
			t.Fatal(err)
		}
		bundles := bundletest.NewServer(v1)
		remoteGuard := fmt.Sprintf(`reset_guard {
		policy {
			remote %s bundles/resetguard.tar.gz {
				polling 1s 1s
				wait 10s
			}
			query data.resetguard.decision
			timeout 2s
		}
	}`, bundles.URL)
		guard := func(extra string) string {
			return fmt.Sprintf(`reset_guard {
		policy %s {
			query data.resetguard.test.decision
			timeout 2s
		}
		fingerprint_key integration-test-key
		%s
	}`, policyDir, extra)
		}
		config := fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	auto_https off
	log resetguard_audit {
		output file %s
		format json
		include http.handlers.reset_guard.audit
	}
}
http://localhost:9080 {
	%s
	reverse_proxy %s
}
http://localhost:9081 {
	%s
	reverse_proxy %s
}
http://localhost:9082 {
	%s
	reverse_proxy %s
}
http://localhost:9083 {
	%s
	reverse_proxy %s
}
http://localhost:9084 {
	%s
	reverse_proxy %s
}
http://localhost:9085 {
	%s
	reverse_proxy %s
}
http://localhost:9086 {
	reset_guard {
		policy %s
		query data.resetguard.decision
	}
	reverse_proxy %s
}
http://localhost:9091 {
	header {
		>X-RG-Decision "{http.reset_guard.decision}"
		>X-RG-Session "{http.reset_guard.session_id}"
		>X-RG-Principal "{http.reset_guard.principal}"
		>X-RG-Reasons "{http.reset_guard.reasons}"
		>X-RG-Event "{http.reset_guard.event_id}"
	}
	%s
	reverse_proxy %s
}
http://localhost:9092 {
	%s
	reverse_proxy %s
	handle_errors {
		header Content-Type "text/plain; charset=utf-8"
		respond "refused {http.error.status_code} {http.reset_guard.error_type} reasons={http.reset_guard.reasons} id={http.reset_guard.request_id}"
	}
}
`, auditPath, guard("request_body_timeout 1s"), upstream, guard("dry_run"), upstream, guard(""), dead, remoteGuard, upstream, remoteGuard, upstream,
			guard("session_lookup "+be.srv.URL+" {\n\t\t\ttimeout 500ms\n\t\t}"), upstream, reloadDir, upstream,
			guard("name placeholders"), upstream, guard("name restyled\n\t\terrors handle_errors"), upstream)
		config += idf.sites(upstream, be.srv.URL)
		af := newAuditFixture(t, dir)
		config += af.sites(policyDir, upstream)
		tester := caddytest.NewTester(t)
		tester.InitServer(config, "caddyfile")
		if t.Failed() {
			t.Fatal("gateway did not start")
		}
		theGateway = &gateway{audit: af, identity: idf, backend: be, bundles: bundles, auditPath: auditPath, config: config, reloadDir: reloadDir}
	})
	if theGateway == nil {
		t.Fatal("gateway failed to start in an earlier test")
	}
	return theGateway
}

// client sends requests without transparent decompression, so the test
// sees the exact bytes the gateway sends.
var client = &http.Client{
	Transport: &http.Transport{DisableCompression: true, Proxy: nil},
	Timeout:   10 * time.Second,
}

// newAuditLines returns the audit records written since the last call.
func (g *gateway) newAuditLines(t *testing.T) []map[string]any {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	f, err := os.Open(g.auditPath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(g.offset, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	g.offset += int64(len(data))
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not JSON: %v: %s", err, sc.Text())
		}
		validateAuditLine(t, sc.Text())
		m["_raw"] = sc.Text()
		out = append(out, m)
	}
	return out
}

// field walks a dotted path through a decoded record.
func field(m map[string]any, path string) any {
	var cur any = m
	for _, p := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = obj[p]
	}
	return cur
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// secrets are credential values and personal data the suite sends or the
// backend returns; none may appear in an audit record.
var secrets = []string{
	base64.StdEncoding.EncodeToString([]byte("bot:hunter2")),
	"hunter2",
	"7T:dGlja2V0LXNlY3JldA==",
	"8A:Cust12345.c2VjcmV0LXRva2Vu",
	"xsrf-value-0001",
	"app-token-secret",
}

// fixtureSecrets are the values of fields the audit must leave out.
func fixtureSecrets(t *testing.T) []string {
	t.Helper()
	var e map[string]any
	data, err := os.ReadFile("testdata/entities/reset.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range []string{"SessionKey", "FirstMessage", "LastMessage", "CustomerName", "CustomerEmail", "CustomerPhone", "CustomerHost", "CustomerAlias", "CustomerCompanyName"} {
		s, ok := e[k].(string)
		if !ok || s == "" {
			t.Fatalf("fixture field %s must be a non-empty string for the redaction check", k)
		}
		out = append(out, s)
	}
	return out
}

type itCase struct {
	name    string
	base    string
	method  string
	path    string
	headers map[string]string
	body    string

	wantStatus    int
	wantForwarded bool
	// wantAudit: nil means "no audit record"; otherwise dotted-path
	// fields and their expected values.
	wantAudit map[string]any
	// wantHeaders on the client response.
	wantHeaders map[string]string
	// wantReason is the first reason in the guard's JSON error body.
	wantReason string
	// check runs extra assertions.
	check func(t *testing.T, resp *http.Response, body []byte, rec map[string]any, got []received)
}

func TestIntegration(t *testing.T) {
	g := startGateway(t)
	piiValues := fixtureSecrets(t)
	g.newAuditLines(t) // discard anything from start-up

	allowed := func(id float64, scheme string) map[string]any {
		return map[string]any{
			"schema":                          "resetguard.audit/v1",
			"event.type":                      []any{"allowed"},
			"event.outcome":                   "success",
			"http.response.status_code":       float64(200),
			"resetguard.session_id":           id,
			"resetguard.credential.scheme":    scheme,
			"resetguard.decision.allow":       true,
			"resetguard.upstream.status":      float64(200),
			"resetguard.upstream.entity_read": true,
			"resetguard.chat_session.id":      id,
		}
	}
	denied := func(status float64, reason string) map[string]any {
		return map[string]any{
			"event.type":                []any{"denied"},
			"event.outcome":             "failure",
			"event.reason":              reason,
			"http.response.status_code": status,
		}
	}
	withField := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	rest := "/api/v1/ChatSession/427/Reset"
	botAuth := map[string]string{"Authorization": basic("bot", "hunter2")}

	cases := []itCase{
		{
			name: "allowed via basic", method: "POST", path: rest, headers: botAuth,
			wantStatus: 200, wantForwarded: true,
			wantAudit: withField(allowed(427, "basic"), "user.name", "bot", "resetguard.chat_session.status", "InQueue",
				"resetguard.chat_session.user_associate_id", float64(9), "url.path", rest),
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
			name: "policy header from the client is replaced", method: "POST", path: rest,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-ResetGuard-Decision": "forged"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowed(427, "basic"),
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if vs := got[0].Header.Values("X-ResetGuard-Decision"); len(vs) != 1 || vs[0] != "allow" {
					t.Errorf("upstream X-ResetGuard-Decision = %q, want only the policy's value", vs)
				}
			},
		},
		{
			name: "allowed via SoTicket (scheme upper case)", method: "POST", path: rest,
			headers:    map[string]string{"Authorization": "SOTICKET 7T:dGlja2V0LXNlY3JldA==", "SO-AppToken": "app-token-secret"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowed(427, "soticket"),
		},
		{
			name: "allowed via Online bearer token in its tenant", method: "POST", path: "/Cust12345/api/v1/ChatSession/427/Reset",
			headers:    map[string]string{"Authorization": "Bearer 8A:Cust12345.c2VjcmV0LXRva2Vu"},
			wantStatus: 200, wantForwarded: true, wantAudit: withField(allowed(427, "bearer"), "user.domain", "Cust12345"),
		},
		{
			name: "allowed via XSRF header and cookie", method: "POST", path: rest,
			headers:    map[string]string{"X-XSRF-TOKEN": "xsrf-value-0001", "Cookie": "XSRF-TOKEN=xsrf-value-0001; other=1"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowed(427, "xsrf"),
		},
		{
			name: "denied by policy", method: "POST", path: rest,
			headers:    map[string]string{"Authorization": basic("mallory", "hunter2")},
			wantStatus: 403, wantReason: "mallory_refused", wantHeaders: map[string]string{"X-Denied-By": "policy"},
			wantAudit: withField(denied(403, "mallory_refused"), "resetguard.decision.allow", false,
				"resetguard.decision.reasons", []any{"mallory_refused"}, "user.name", "mallory"),
		},
		{
			name: "policy chooses the deny status", method: "POST", path: "/api/v1/ChatSession/666/Reset", headers: botAuth,
			wantStatus: 423, wantReason: "session_locked", wantAudit: denied(423, "session_locked"),
		},
		{
			name: "policy evaluation error fails closed", method: "POST", path: "/api/v1/ChatSession/13/Reset", headers: botAuth,
			wantStatus: 503, wantReason: "policy_error",
			wantAudit: withField(denied(503, "policy_error"), "resetguard.decision.allow", false),
		},
		{
			name: "no credentials", method: "POST", path: rest,
			wantStatus: 401, wantReason: "missing_credentials", wantAudit: denied(401, "missing_credentials"),
			check: func(t *testing.T, resp *http.Response, _ []byte, _ map[string]any, _ []received) {
				if got := resp.Header.Values("WWW-Authenticate"); len(got) != 3 {
					t.Errorf("WWW-Authenticate = %q, want Basic, SoTicket and Bearer challenges", got)
				}
			},
		},
		{
			name: "XSRF header does not match cookie", method: "POST", path: rest,
			headers:    map[string]string{"X-XSRF-TOKEN": "xsrf-value-0001", "Cookie": "XSRF-TOKEN=other-value"},
			wantStatus: 401, wantReason: "xsrf_mismatch", wantAudit: denied(401, "xsrf_mismatch"),
		},
		{
			name: "Online token for another tenant", method: "POST", path: "/Cust99999/api/v1/ChatSession/427/Reset",
			headers:    map[string]string{"Authorization": "Bearer 8A:Cust12345.c2VjcmV0LXRva2Vu"},
			wantStatus: 401, wantReason: "tenant_mismatch", wantAudit: denied(401, "tenant_mismatch"),
			check: func(t *testing.T, resp *http.Response, _ []byte, _ map[string]any, _ []received) {
				if !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), "|"), `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate lacks invalid_token: %q", resp.Header.Values("WWW-Authenticate"))
				}
			},
		},
		{
			name: "id not a number", method: "POST", path: "/api/v1/ChatSession/abc/Reset", headers: botAuth,
			wantStatus: 400, wantReason: "bad_session_id", wantAudit: denied(400, "bad_session_id"),
		},
		{
			name: "id zero", method: "POST", path: "/api/v1/ChatSession/0/Reset", headers: botAuth,
			wantStatus: 400, wantReason: "bad_session_id", wantAudit: denied(400, "bad_session_id"),
		},
		{
			name: "id past int32", method: "POST", path: "/api/v1/ChatSession/2147483648/Reset", headers: botAuth,
			wantStatus: 400, wantReason: "bad_session_id", wantAudit: denied(400, "bad_session_id"),
		},
		{
			name: "wrong method GET", method: "GET", path: rest, headers: botAuth,
			wantStatus: 405, wantReason: "method_not_allowed", wantHeaders: map[string]string{"Allow": "POST"},
			wantAudit: withField(denied(405, "method_not_allowed"), "http.request.method", "GET"),
		},
		{
			name: "wrong method PUT", method: "PUT", path: rest, headers: botAuth,
			wantStatus: 405, wantReason: "method_not_allowed", wantAudit: denied(405, "method_not_allowed"),
		},
		{
			name: "method override header", method: "POST", path: rest,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-HTTP-Method-Override": "GET"},
			wantStatus: 400, wantReason: "method_override_refused", wantAudit: denied(400, "method_override_refused"),
		},
		{
			name: "Agents route with JSON body", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:    `{"ChatSessionId": 831}`, wantStatus: 200, wantForwarded: true,
			wantAudit: withField(allowed(831, "basic"), "resetguard.route", "agents"),
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if string(got[0].Body) != `{"ChatSessionId": 831}` {
					t.Errorf("backend got body %q, want the client's body unchanged", got[0].Body)
				}
			},
		},
		{
			name: "Agents route with form body", method: "POST", path: "/SuperOffice/api/v1/agents/chat/resetchatsession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/x-www-form-urlencoded"},
			body:    "ChatSessionId=831", wantStatus: 200, wantForwarded: true,
			wantAudit: withField(allowed(831, "basic"), "resetguard.route", "agents"),
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if string(got[0].Body) != "ChatSessionId=831" {
					t.Errorf("backend got body %q", got[0].Body)
				}
			},
		},
		{
			name: "Agents route with XML body", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/xml"},
			body:       `<ResetChatSession xmlns="http://www.superoffice.net/ws/crm/NetServer/Services88"><ChatSessionId>831</ChatSessionId></ResetChatSession>`,
			wantStatus: 200, wantForwarded: true, wantAudit: withField(allowed(831, "basic"), "resetguard.route", "agents"),
		},
		{
			name: "Agents route without an id", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:    `{"Other": 1}`, wantStatus: 400, wantReason: "bad_session_id", wantAudit: denied(400, "bad_session_id"),
		},
		{
			name: "Agents route body too large", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json"},
			body:       `{"ChatSessionId": 831, "pad": "` + strings.Repeat("x", 70<<10) + `"}`,
			wantStatus: 413, wantReason: "request_body_too_large", wantAudit: denied(413, "request_body_too_large"),
		},
		{
			name: "Agents route answers null", method: "POST", path: "/api/v1/Agents/Chat/ResetChatSession",
			headers: map[string]string{"Authorization": basic("bot", "hunter2"), "Content-Type": "application/json", "X-Backend-Mode": "null"},
			body:    `{"ChatSessionId": 831}`, wantStatus: 200, wantForwarded: true,
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "failure", "event.reason": "upstream_no_entity",
				"resetguard.upstream.entity_read": false},
		},
		{
			name: "XML response", method: "POST", path: "/api/v1/ChatSession/428/Reset",
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Accept": "application/xml", "X-Backend-Mode": "xml"},
			wantStatus: 200, wantForwarded: true,
			wantAudit: withField(allowed(428, "basic"), "resetguard.upstream.content_type", "application/xml; charset=utf-8"),
		},
		{
			name: "gzip response reaches the client as gzip", method: "POST", path: "/api/v1/ChatSession/429/Reset",
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "Accept-Encoding": "gzip", "X-Backend-Mode": "gzip"},
			wantStatus: 200, wantForwarded: true, wantAudit: allowed(429, "basic"),
			wantHeaders: map[string]string{"Content-Encoding": "gzip"},
		},
		{
			name: "upstream 500", method: "POST", path: rest,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-Backend-Mode": "500"},
			wantStatus: 500, wantForwarded: true,
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "failure", "event.reason": "upstream_status",
				"resetguard.upstream.status": float64(500), "http.response.status_code": float64(500)},
		},
		{
			name: "upstream unreachable", base: deadURL, method: "POST", path: rest, headers: botAuth,
			wantStatus: 502, wantReason: "upstream_error",
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "failure", "event.reason": "upstream_error",
				"http.response.status_code": float64(502), "resetguard.upstream.error": "upstream unreachable or failed"},
		},
		{
			name: "response larger than the hold streams through", method: "POST", path: rest,
			headers:    map[string]string{"Authorization": basic("bot", "hunter2"), "X-Backend-Mode": "large"},
			wantStatus: 200, wantForwarded: true,
			wantAudit: map[string]any{"event.outcome": "unknown", "event.reason": "entity_not_read",
				"resetguard.upstream.entity_read": false, "http.response.status_code": float64(200)},
		},
		{
			name: "dry run forwards a denied call and records the decision", base: dryRunURL, method: "POST", path: rest,
			headers:    map[string]string{"Authorization": basic("mallory", "hunter2")},
			wantStatus: 200, wantForwarded: true,
			wantAudit: map[string]any{"event.type": []any{"allowed"}, "event.outcome": "success",
				"resetguard.decision.allow": false, "resetguard.decision.dry_run": true,
				"resetguard.decision.reasons": []any{"mallory_refused"}},
		},
		{
			name: "non-reset GET passes untouched", method: "GET", path: "/api/v1/ChatSession/427",
			headers:    map[string]string{"Authorization": "SoTicket 7T:dGlja2V0LXNlY3JldA==", "X-ResetGuard-Decision": "client-value"},
			wantStatus: 200, wantForwarded: true, wantAudit: nil,
			check: func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
				if h := got[0].Header.Get("X-ResetGuard-Decision"); h != "client-value" {
					t.Errorf("pass-through request header changed: %q", h)
				}
			},
		},
		{
			name: "non-reset Pickup passes untouched", method: "POST", path: "/api/v1/ChatSession/427/Pickup",
			wantStatus: 200, wantForwarded: true, wantAudit: nil,
		},
	}
	// Spellings of the REST route: each must be guarded (401 without
	// credentials) and never reach the backend.
	for _, p := range []string{
		"/api/v1/chatsession/427/reset",
		"/API/V1/CHATSESSION/427/RESET",
		"/SuperOffice/api/v1/ChatSession/427/Reset",
		"/Cust12345/api/v1/ChatSession/427/Reset/",
		"/api//v1/ChatSession//427/Reset",
		"/api/v1/ChatSession/427/./Reset",
		"/api/v1/x/../ChatSession/427/Reset",
		"/api/v1/ChatSession/427/%52eset",
		"/api/v1/ChatSession%2F427%2FReset",
		"/api/v1/ChatSession%252F427%252FReset",
		"/api/v1/ChatSession/427/Reset;jsessionid=1",
		"/api/v1/ChatSession/427/Reset.",
		"/api/v1/ChatSession/427/Reset?$select=x",
	} {
		cases = append(cases, itCase{
			name: "spelling " + p, method: "POST", path: p,
			wantStatus: 401, wantReason: "missing_credentials", wantAudit: denied(401, "missing_credentials"),
		})
	}

	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			caseID := "case-" + strconv.Itoa(i)
			base := tc.base
			if base == "" {
				base = gatewayURL
			}
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == "" {
				req.Body = http.NoBody
				req.ContentLength = 0
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("X-Test-Case", caseID)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			records := g.newAuditLines(t)

			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d; body %.300s", resp.StatusCode, tc.wantStatus, body)
			}
			got := g.backend.requests(caseID)
			if tc.wantForwarded && len(got) != 1 {
				t.Fatalf("backend received %d requests, want 1", len(got))
			}
			if !tc.wantForwarded && len(got) != 0 {
				t.Fatalf("backend received %d requests, want none: %+v", len(got), got)
			}
			if tc.wantForwarded {
				if sent := g.backend.sentBody(caseID); !bytes.Equal(body, sent) {
					t.Errorf("client body (%d bytes) differs from the backend's (%d bytes)", len(body), len(sent))
				}
			}
			if tc.wantReason != "" {
				eb := decodeErrorBody(t, body)
				if eb.Status != tc.wantStatus || len(eb.Reasons) == 0 || eb.Reasons[0] != tc.wantReason || eb.RequestID == "" ||
					!eb.Error || eb.ErrorSource != "ResetGuard" || eb.ErrorType == "" || eb.ErrorMessage == "" {
					t.Errorf("error body = %+v, want the SuperOffice error shape with status %d, reason %s and a request id", eb, tc.wantStatus, tc.wantReason)
				}
				if eb.RequestID != resp.Header.Get("X-Request-Id") {
					t.Errorf("body RequestId %q, header X-Request-Id %q: want one id", eb.RequestID, resp.Header.Get("X-Request-Id"))
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("error Content-Type = %q", ct)
				}
			}
			for k, v := range tc.wantHeaders {
				if resp.Header.Get(k) != v {
					t.Errorf("response header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}

			if tc.wantAudit == nil {
				if len(records) != 0 {
					t.Fatalf("pass-through wrote %d audit records: %v", len(records), records[0]["_raw"])
				}
			} else {
				if len(records) != 1 {
					t.Fatalf("audit records = %d, want exactly 1", len(records))
				}
				rec := records[0]
				for path, want := range tc.wantAudit {
					if g := field(rec, path); fmt.Sprint(g) != fmt.Sprint(want) {
						t.Errorf("audit %s = %v, want %v\nrecord: %s", path, g, want, rec["_raw"])
					}
				}
				if field(rec, "http.request.id") == nil || field(rec, "event.id") != field(rec, "http.request.id") {
					t.Errorf("audit request/event id missing: %s", rec["_raw"])
				}
				if id := resp.Header.Get("X-Request-Id"); field(rec, "event.id") != id {
					t.Errorf("audit event.id %v, response X-Request-Id %q: want one id", field(rec, "event.id"), id)
				}
				raw := rec["_raw"].(string)
				for _, s := range append(append([]string{}, secrets...), piiValues...) {
					if strings.Contains(raw, s) {
						t.Errorf("audit record leaks %q: %s", s, raw)
					}
				}
				for _, key := range []string{"SessionKey", "session_key", "customer_", "first_message", "last_message"} {
					if strings.Contains(raw, key) {
						t.Errorf("audit record holds field %q: %s", key, raw)
					}
				}
				if tc.check != nil {
					tc.check(t, resp, body, rec, got)
				}
				return
			}
			if tc.check != nil {
				tc.check(t, resp, body, nil, got)
			}
		})
	}
}

// guardError is the body of a refusal the guard writes: SuperOffice's
// WebAPI error shape plus reasons, status and request id.
type guardError struct {
	Error        bool
	ErrorType    string
	ErrorMessage string
	ErrorSource  string
	Status       int
	Reasons      []string
	RequestID    string `json:"RequestId"`
}

// decodeErrorBody decodes a refusal, insisting on the exact field names:
// encoding/json would match "reasons" to Reasons too.
func decodeErrorBody(t *testing.T, body []byte) guardError {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("guard error body is not JSON: %v: %s", err, body)
	}
	for _, k := range []string{"Error", "ErrorType", "ErrorMessage", "ErrorSource", "Status", "Reasons", "RequestId"} {
		if _, ok := raw[k]; !ok {
			t.Fatalf("guard error body lacks %s: %s", k, body)
		}
	}
	var eb guardError
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatal(err)
	}
	return eb
}

// bundlePolicy allows every caller (v1) or denies every caller with 403
// and the version as reason, so a client can tell which revision decided.
func bundlePolicy(version string, allow bool) map[string]string {
	decision := fmt.Sprintf(`{"allow": true, "reasons": [%q]}`, version)
	if !allow {
		decision = fmt.Sprintf(`{"allow": false, "reasons": [%q], "status": 403}`, version)
	}
	return map[string]string{"resetguard/policy.rego": "package resetguard\n\ndecision := " + decision + "\n"}
}

// TestBundleHotSwap: two gateway instances poll one bundle service. While
// requests run, a new revision is served and both switch to it within the
// polling interval without a failed request; then a bundle that does not
// compile is served and the previous revision keeps deciding.
func TestBundleHotSwap(t *testing.T) {
	g := startGateway(t)
	instances := []string{bundleURL1, bundleURL2}
	do := func(base string) (int, string, error) {
		req, err := http.NewRequest(http.MethodPost, base+"/api/v1/ChatSession/427/Reset", http.NoBody)
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Authorization", basic("bot", "hunter2"))
		req.Header.Set("X-Test-Case", "hot-swap")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, "", err
		}
		if resp.StatusCode == http.StatusForbidden {
			var eb struct{ Reasons []string }
			_ = json.Unmarshal(body, &eb)
			if len(eb.Reasons) > 0 {
				return resp.StatusCode, eb.Reasons[0], nil
			}
		}
		return resp.StatusCode, "", nil
	}
	for _, base := range instances {
		if code, _, err := do(base); err != nil || code != http.StatusOK {
			t.Fatalf("%s under v1: %d %v, want 200", base, code, err)
		}
	}

	// Load: 4 clients per instance until told to stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	total := 0
	for _, base := range instances {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, err := do(base)
					mu.Lock()
					total++
					if err != nil || (code != http.StatusOK && code != http.StatusForbidden) {
						failures = append(failures, fmt.Sprintf("%s: %d %v", base, code, err))
					}
					mu.Unlock()
				}
			}()
		}
	}

	v2, err := bundletest.Build("v2", []string{"resetguard"}, bundlePolicy("v2", false), "", "")
	if err != nil {
		t.Fatal(err)
	}
	swapped := time.Now()
	g.bundles.Set(v2)
	for _, base := range instances {
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, reason, err := do(base)
			if err == nil && code == http.StatusForbidden && reason == "v2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not switch to v2 within 5s (polling interval 1s): %d %s %v", base, code, reason, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("both instances decided under v2 %s after it was served", time.Since(swapped).Round(time.Millisecond))

	broken, err := bundletest.Build("v3-broken", []string{"resetguard"},
		map[string]string{"resetguard/policy.rego": "package resetguard\n\ndecision := {\"allow\": true, \"reasons\": [x]}\n"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	polls := g.bundles.Requests.Load()
	g.bundles.Set(broken)
	waitUntil := time.Now().Add(10 * time.Second)
	for g.bundles.Requests.Load() < polls+4 { // both instances fetched it at least twice
		if time.Now().After(waitUntil) {
			t.Fatal("instances stopped polling")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, base := range instances {
		if code, reason, err := do(base); err != nil || code != http.StatusForbidden || reason != "v2" {
			t.Fatalf("%s after a broken bundle: %d %q %v; v2 must keep deciding", base, code, reason, err)
		}
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed during the swaps, first: %s", len(failures), total, failures[0])
	}
	if total < 50 {
		t.Fatalf("only %d requests ran under load; the test proves little", total)
	}
	t.Logf("%d requests under load, none failed", total)

	// The records name the revision each decision was made under.
	revs := map[string]int{}
	for _, rec := range g.newAuditLines(t) {
		if rev, ok := field(rec, "resetguard.decision.policy_revision").(string); ok {
			revs[rev]++
		}
	}
	if revs["v1"] == 0 || revs["v2"] == 0 || revs["v3-broken"] != 0 {
		t.Fatalf("audit revisions %v: want v1 and v2, never the broken v3", revs)
	}

	// Activations and rejections are exported on Caddy's /metrics.
	metrics := scrape(t)
	if v := metrics["resetguard_policy_bundle_activations_total"]; v < 4 { // v1 and v2 on each instance
		t.Errorf("bundle activations = %v, want >= 4", v)
	}
	if v := metrics["resetguard_policy_bundle_rejections_total"]; v < 2 {
		t.Errorf("bundle rejections = %v, want >= 2 (v3 on each instance)", v)
	}
	if v := metrics[`resetguard_requests_total{outcome="failure",route="rest",scheme="basic",type="denied"}`]; v < 1 {
		t.Errorf("denied requests = %v, want > 0", v)
	}
}

// scrape reads the unlabelled and labelled sample values from Caddy's
// admin /metrics.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := client.Get("http://localhost:2999/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestSessionLookup: with session_lookup, the policy sees the session as
// the backend has it now, fetched with the caller's own credential; a
// failed lookup refuses the reset.
func TestSessionLookup(t *testing.T) {
	g := startGateway(t)
	g.newAuditLines(t)
	tests := []struct {
		id         string
		wantStatus int
		wantReason string
	}{
		{"427", 200, ""},
		{"77", 409, "session_closed"},
		{"78", 503, "session_lookup_failed"},
		{"79", 404, "session_not_found"},
		{"80", 503, "session_lookup_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, lookupURL+"/SuperOffice/api/v1/ChatSession/"+tt.id+"/Reset", http.NoBody)
			if err != nil {
				t.Fatal(err)
			}
			auth := basic("bot", "hunter2")
			req.Header.Set("Authorization", auth)
			req.Header.Set("X-Test-Case", "lookup-case-"+tt.id)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			lookups := g.backend.requests("lookup-" + tt.id)
			if len(lookups) != 1 {
				t.Fatalf("backend saw %d lookups, want 1", len(lookups))
			}
			if lookups[0].Header.Get("Authorization") != auth || !strings.EqualFold(lookups[0].Path, "/superoffice/api/v1/ChatSession/"+tt.id) {
				t.Errorf("lookup %s with Authorization %q; want the caller's credential under the request's prefix", lookups[0].Path, lookups[0].Header.Get("Authorization"))
			}
			forwarded := len(g.backend.requests("lookup-case-" + tt.id))
			if (tt.wantStatus == 200) != (forwarded == 1) {
				t.Errorf("reset forwarded %d times for status %d", forwarded, tt.wantStatus)
			}
			recs := g.newAuditLines(t)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1", len(recs))
			}
			if tt.wantReason != "" && field(recs[0], "event.reason") != tt.wantReason {
				t.Errorf("audit reason %v, want %s", field(recs[0], "event.reason"), tt.wantReason)
			}
		})
	}
}

// TestConfigReloadRereadsPolicy: a Caddy config reload reads the policy
// files again. It reloads the whole shared config, so it stays the last
// test of this file.
func TestConfigReloadRereadsPolicy(t *testing.T) {
	g := startGateway(t)
	post := func() (int, string) {
		req, err := http.NewRequest(http.MethodPost, reloadURL+"/api/v1/ChatSession/427/Reset", http.NoBody)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", basic("bot", "hunter2"))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb struct{ Reasons []string }
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &eb)
		if len(eb.Reasons) > 0 {
			return resp.StatusCode, eb.Reasons[0]
		}
		return resp.StatusCode, ""
	}
	g.newAuditLines(t)
	if code, _ := post(); code != http.StatusOK {
		t.Fatalf("before the reload: %d, want 200", code)
	}
	before := field(g.newAuditLines(t)[0], "resetguard.decision.policy_revision")

	if err := os.WriteFile(filepath.Join(g.reloadDir, "policy.rego"), []byte(bundlePolicy("reload-v2", false)["resetguard/policy.rego"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := post(); code != http.StatusOK {
		t.Fatal("a changed file must not change the policy before a reload")
	}
	g.newAuditLines(t)

	req, err := http.NewRequest(http.MethodPost, "http://localhost:2999/load", strings.NewReader(g.config))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate") // reload even though the config text is unchanged
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if code, reason := post(); code != http.StatusForbidden || reason != "reload-v2" {
		t.Fatalf("after the reload: %d %q, want 403 reload-v2", code, reason)
	}
	recs := g.newAuditLines(t)
	if len(recs) != 1 {
		t.Fatalf("%d audit records, want 1", len(recs))
	}
	if after := field(recs[0], "resetguard.decision.policy_revision"); after == before || after == nil {
		t.Fatalf("policy revision %v after the reload, was %v: want a new one", after, before)
	}
}
