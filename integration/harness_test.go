package integration_test

// The harness: one Caddy per test binary, started by the first suite that
// asks for it, with every site of caddyfile_test.go, in front of the
// stand-in backend (backend_test.go) and identity provider (idp_test.go).

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	// testPolicyDir is the Rego policy most sites decide with; other
	// packages' unit tests decide with it too, so it stays in ../testdata.
	testPolicyDir     = "../testdata/caddy"
	identityPolicyDir = "testdata/identity"
)

// gateway is the running Caddy and what it writes.
type gateway struct {
	backend   *backend
	identity  *identityFixture
	bundles   *bundletest.Server
	dlogs     *logCollector // decision logs of decisionLogsURL
	config    string        // the Caddyfile loaded
	reloadDir string        // the policy directory of reloadURL
	auditPath string        // the Caddy logger's records, all sites
	// durableDir and rotateDir hold the durable audit files of
	// durableURL and rotateURL.
	durableDir, rotateDir string

	mu     sync.Mutex
	offset int64 // how far newAuditLines has read auditPath
}

var (
	gatewayOnce sync.Once
	theGateway  *gateway
)

// startGateway starts the shared Caddy once per test binary. Starting
// takes seconds and the ports allow one, so every suite shares it and
// tells its requests apart by X-Test-Case and by the site it calls.
func startGateway(t *testing.T) *gateway {
	t.Helper()
	if testing.Short() {
		t.Skip("the in-process Caddy suites do not run with -short")
	}
	gatewayOnce.Do(func() { theGateway = newGateway(t) })
	if theGateway == nil {
		t.Fatal("gateway failed to start in an earlier test")
	}
	return theGateway
}

// newGateway brings up the stand-ins, writes the work directory and
// loads the Caddyfile. A failure ends the calling test before theGateway
// is set, so every later suite fails fast instead of waiting on ports.
func newGateway(t *testing.T) *gateway {
	be := newBackend(t)
	idf := newIdentityFixture(t)
	be.principals = idf.servePrincipal
	v1, err := bundletest.Build("v1", []string{"resetguard"}, bundlePolicy("v1", true), "", "")
	if err != nil {
		t.Fatal(err)
	}
	// The work directory is left in place: its audit.log holds every
	// record of the run, as docs/audit.md's examples do.
	dir, err := os.MkdirTemp("", "resetguard-it-")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{
		backend:    be,
		identity:   idf,
		bundles:    bundletest.NewServer(v1),
		dlogs:      newLogCollector(),
		auditPath:  filepath.Join(dir, "audit.log"),
		reloadDir:  filepath.Join(dir, "reload-policy"),
		durableDir: filepath.Join(dir, "durable"),
		rotateDir:  filepath.Join(dir, "rotate"),
	}
	for _, d := range []string{g.reloadDir, g.durableDir, g.rotateDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeReloadPolicy(t, g.reloadDir, "reload-v1", true)
	g.config = gatewayConfig(t, g.siteParams(t))
	caddytest.NewTester(t).InitServer(g.config, "caddyfile")
	if t.Failed() {
		t.Fatal("gateway did not start")
	}
	return g
}

// siteParams fills the Caddyfile's blanks from the running stand-ins.
func (g *gateway) siteParams(t *testing.T) siteParams {
	policyDir, err := filepath.Abs(testPolicyDir)
	if err != nil {
		t.Fatal(err)
	}
	identityDir, err := filepath.Abs(identityPolicyDir)
	if err != nil {
		t.Fatal(err)
	}
	return siteParams{
		AuditLog:          g.auditPath,
		PolicyDir:         policyDir,
		IdentityPolicyDir: identityDir,
		ReloadDir:         g.reloadDir,
		DurableLog:        filepath.Join(g.durableDir, "audit.log"),
		RotateLog:         filepath.Join(g.rotateDir, "audit.log"),
		Upstream:          strings.TrimPrefix(g.backend.srv.URL, "http://"),
		BackendURL:        g.backend.srv.URL,
		Dead:              unusedAddr(t),
		Bundles:           g.bundles.URL,
		JWKS:              g.identity.jwks.URL,
		Issuer:            issuer,
		Audience:          audience,
		DecisionLogs:      g.dlogs.srv.URL,
	}
}

// unusedAddr is a loopback address with nothing listening, for "upstream
// unreachable".
func unusedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
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

// writeReloadPolicy puts bundlePolicy(version, allow) where reloadURL's
// guard reads its policy.
func writeReloadPolicy(t *testing.T, dir, version string, allow bool) {
	t.Helper()
	rego := bundlePolicy(version, allow)["resetguard/policy.rego"]
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
}

// client sends requests without transparent decompression, so the test
// sees the exact bytes the gateway sends.
var client = &http.Client{
	Transport: &http.Transport{DisableCompression: true, Proxy: nil},
	Timeout:   10 * time.Second,
}

// post sends a POST without a body to base+path with the given
// credential (none when empty) and extra headers, and returns the
// response and its body.
func post(t *testing.T, base, path, auth string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return doRequest(t, req)
}

// doRequest sends req with client and reads the whole answer.
func doRequest(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
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

// firstReason is the first of a refusal's reasons, "" when the body
// names none; lenient, for suites that only tell decisions apart.
func firstReason(body []byte) string {
	var eb struct{ Reasons []string }
	_ = json.Unmarshal(body, &eb)
	if len(eb.Reasons) > 0 {
		return eb.Reasons[0]
	}
	return ""
}

// scrape reads the unlabelled and labelled sample values from Caddy's
// admin /metrics.
func scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := client.Get(adminURL + "/metrics")
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

// adminStatus is the part of GET /reset_guard/status the tests read.
type adminStatus struct {
	Handlers []struct {
		Instance uint64
		Name     string
		Policy   struct {
			Query, Revision, Remote string
			Ready                   bool
			DryRun                  bool `json:"dry_run"`
			Bundle                  *struct {
				Activations, Rejections int64
				LastActivation          string `json:"last_activation"`
				LastError               string `json:"last_error"`
			}
		}
		Audit struct {
			Logger string
			File   *struct {
				Path    string
				Healthy bool
				Error   string
			}
		}
		Requests struct{ Allowed, Denied map[string]int64 }
	}
}

func getStatus(t *testing.T) adminStatus {
	t.Helper()
	resp, err := client.Get(adminURL + "/reset_guard/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status route: %d %s", resp.StatusCode, body)
	}
	var st adminStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("status body: %v: %s", err, body)
	}
	return st
}
