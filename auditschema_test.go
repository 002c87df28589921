package resetguard_test

import (
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const (
	auditLineSchemaFile = "testdata/schema/resetguard.audit.v1.schema.json"
	auditLineSchemaID   = "https://resetguard.dev/schema/resetguard.audit/v1"
)

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

// validateAuditLine checks one audit log line (a record as Caddy's logger
// or the durable audit file writes it) against resetguard.audit/v1 and
// fails the test with the validation error and the line.
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
}

// TestAuditSchemaCompiles keeps the schema file loadable even when no
// integration test runs.
func TestAuditSchemaCompiles(t *testing.T) {
	auditLineSchema(t)
}
