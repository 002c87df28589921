package integration_test

// Reading what the gateway recorded: the Caddy logger's audit file, each
// record validated against the published schema as it is read, and what
// no record may hold.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/resetguard/caddy-resetguard/internal/ecstest"
)

const (
	// The schema the docs publish; audit's unit tests hold the encoder to
	// the same file.
	auditLineSchemaFile = "../testdata/schema/resetguard.audit.v1.schema.json"
	auditLineSchemaID   = "https://resetguard.dev/schema/resetguard.audit/v1"
)

// newAuditLines returns the audit records written since the last call,
// each decoded, validated against the schema, and with its line under
// "_raw". Suites call it before their requests to skip what came before,
// so every record the gateway writes is validated once.
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

// secrets are credential values and personal data the suites send or the
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
	data, err := os.ReadFile(entityFile)
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

var (
	auditLineSchemaOnce sync.Once
	auditLineSchemaComp *jsonschema.Schema
	auditLineSchemaErr  error
)

// auditLineSchema compiles resetguard.audit/v1 once per test binary, with
// format assertions on (2020-12 leaves them off by default).
func auditLineSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	auditLineSchemaOnce.Do(func() {
		f, err := os.Open(auditLineSchemaFile)
		if err != nil {
			auditLineSchemaErr = err
			return
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			auditLineSchemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource(auditLineSchemaID, doc); err != nil {
			auditLineSchemaErr = err
			return
		}
		auditLineSchemaComp, auditLineSchemaErr = c.Compile(auditLineSchemaID)
	})
	if auditLineSchemaErr != nil {
		t.Fatalf("audit schema %s: %v", auditLineSchemaFile, auditLineSchemaErr)
	}
	return auditLineSchemaComp
}

var (
	auditECSOnce sync.Once
	auditECS     *ecstest.Schema
	auditECSErr  error
)

// auditLineECS loads the ECS 8.11.0 field definitions once per test
// binary.
func auditLineECS(t testing.TB) *ecstest.Schema {
	t.Helper()
	auditECSOnce.Do(func() { auditECS, auditECSErr = ecstest.Load("../" + ecstest.Excerpt) })
	if auditECSErr != nil {
		t.Fatalf("ECS definitions: %v", auditECSErr)
	}
	return auditECS
}

// validateAuditLine checks one audit log line (a record as Caddy's logger
// or the durable audit file writes it) against resetguard.audit/v1 and
// against ECS 8.11.0's definitions of the fields it uses, and fails the
// test with the errors and the line.
func validateAuditLine(t *testing.T, line string) {
	t.Helper()
	sch := auditLineSchema(t)
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
	if err != nil {
		t.Errorf("audit line is not JSON: %v\n%s", err, line)
		return
	}
	if err := sch.Validate(doc); err != nil {
		t.Errorf("audit record does not match resetguard.audit/v1: %v\nrecord: %s", err, line)
	}
	if m, ok := doc.(map[string]any); ok {
		if errs := auditLineECS(t).Check(m); len(errs) > 0 {
			t.Errorf("audit record breaks ECS %s:%s\nrecord: %s", ecstest.Version, ecstest.Join(errs), line)
		}
	}
}

// TestAuditSchemaCompiles keeps the schema file and the ECS definitions
// loadable even when no suite that reads records runs (with -short, or
// -run picking others).
func TestAuditSchemaCompiles(t *testing.T) {
	if auditLineSchema(t) == nil || auditLineECS(t) == nil {
		t.Fatal("no compiled schema or ECS definitions")
	}
}
