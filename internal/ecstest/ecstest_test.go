package ecstest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func load(t *testing.T) *Schema {
	t.Helper()
	s, err := Load("../../" + Excerpt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExcerpt: the excerpt holds the fields a record uses, and ECS's own
// category/type pairing as the issue quotes it: allowed and denied are
// expected for api, not for iam.
func TestExcerpt(t *testing.T) {
	s := load(t)
	for _, f := range []string{"@timestamp", "ecs.version", "event.action", "event.category", "event.duration", "event.id",
		"event.kind", "event.outcome", "event.reason", "event.type", "http.request.id", "http.request.method",
		"http.response.status_code", "source.ip", "url.path", "user.domain", "user.id", "user.name"} {
		if _, ok := s.Fields[f]; !ok {
			t.Errorf("excerpt lacks %s", f)
		}
	}
	api, _ := s.ExpectedTypes("api")
	iam, _ := s.ExpectedTypes("iam")
	file, _ := s.ExpectedTypes("file")
	if !slices.Contains(api, "allowed") || !slices.Contains(api, "denied") {
		t.Errorf("api expects %v", api)
	}
	if want := []string{"admin", "change", "creation", "deletion", "group", "info", "user"}; !slices.Equal(iam, want) {
		t.Errorf("iam expects %v, want %v", iam, want)
	}
	if !slices.Contains(file, "change") {
		t.Errorf("file expects %v", file)
	}
	if got := s.Fields["event.kind"].Allowed(); !slices.Contains(got, "event") {
		t.Errorf("event.kind allows %v", got)
	}
	if got := s.Fields["event.outcome"].Allowed(); !slices.Equal(got, []string{"failure", "success", "unknown"}) {
		t.Errorf("event.outcome allows %v", got)
	}
	if s.Fields["source.ip"].Type != "ip" || s.Fields["event.duration"].Type != "long" || s.Fields["@timestamp"].Type != "date" {
		t.Error("excerpt types are not ECS's")
	}
}

// good is a record's ECS part that passes.
const good = `{"@timestamp":"2026-11-25T10:00:00.123Z","ecs":{"version":"8.11.0"},
 "event":{"id":"5b0c3b0e-8e7a-4a51-9d55-2f1f0c1b2a3d","kind":"event","category":["api"],"type":["denied"],
  "action":"chat_session.reset","outcome":"failure","reason":"policy_denied","duration":123456},
 "http":{"request":{"id":"client-1","method":"POST"},"response":{"status_code":403}},
 "url":{"path":"/api/v1/ChatSession/427/Reset"},"source":{"ip":"2001:db8::1"},
 "user":{"id":"42","name":"bot","domain":"Cust12345"},
 "schema":"resetguard.audit/v1","resetguard":{"anything":{"goes":true}},
 "level":"info","ts":1796198400.123,"logger":"http.handlers.reset_guard.audit","msg":"chat_session.reset"}`

func doc(t *testing.T, edit func(m map[string]any)) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(good))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	return m
}

func obj(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }

// TestCheck: what passes, and each kind of breach the check reports,
// among them the three ECS findings of issue 15 (an iam category with
// allowed/denied, a two-part ecs.version) and the ip type.
func TestCheck(t *testing.T) {
	s := load(t)
	if errs := s.Check(doc(t, nil)); len(errs) > 0 {
		t.Fatalf("a conforming record fails:%s", Join(errs))
	}
	for name, c := range map[string]struct {
		edit func(m map[string]any)
		want string
	}{
		"iam with denied":          {func(m map[string]any) { obj(m, "event")["category"] = []any{"api", "iam"} }, `"denied" is not an expected type of event.category "iam"`},
		"ecs.version 8.11":         {func(m map[string]any) { obj(m, "ecs")["version"] = "8.11" }, "ecs.version 8.11, want 8.11.0"},
		"not a category":           {func(m map[string]any) { obj(m, "event")["category"] = []any{"chat"} }, "not one of ECS's allowed values"},
		"category not an array":    {func(m map[string]any) { obj(m, "event")["category"] = "api" }, "normalises it to an array"},
		"not an event kind":        {func(m map[string]any) { obj(m, "event")["kind"] = "audit" }, "not one of ECS's allowed values"},
		"outcome not ECS's":        {func(m map[string]any) { obj(m, "event")["outcome"] = "denied" }, "not one of ECS's allowed values"},
		"duration as a string":     {func(m map[string]any) { obj(m, "event")["duration"] = "123" }, "type long wants an integer"},
		"duration with a fraction": {func(m map[string]any) { obj(m, "event")["duration"] = json.Number("1.5") }, "type long wants an integer"},
		"status as a float64":      {func(m map[string]any) { obj(obj(m, "http"), "response")["status_code"] = 403.5 }, "type long wants an integer"},
		"a Unix socket as ip":      {func(m map[string]any) { obj(m, "source")["ip"] = "@" }, "is not an IPv4 or IPv6 address"},
		"ip with a zone":           {func(m map[string]any) { obj(m, "source")["ip"] = "fe80::1%eth0" }, "without zone"},
		"timestamp as a number":    {func(m map[string]any) { m["@timestamp"] = json.Number("1796198400.123") }, "type date"},
		"timestamp not RFC 3339":   {func(m map[string]any) { m["@timestamp"] = "25/11/2026" }, "is not RFC 3339"},
		"no timestamp":             {func(m map[string]any) { delete(m, "@timestamp") }, "@timestamp: required by ECS"},
		"no ecs.version":           {func(m map[string]any) { delete(m, "ecs") }, "ecs.version: required by ECS"},
		"a field ECS lacks":        {func(m map[string]any) { obj(m, "event")["decision"] = "deny" }, "event.decision: not an ECS 8.11.0 field"},
		"a custom top-level field": {func(m map[string]any) { m["tenant"] = "Cust12345" }, "tenant: not an ECS"},
		"an object for a leaf":     {func(m map[string]any) { obj(m, "user")["id"] = map[string]any{"n": "42"} }, "user.id: ECS defines a keyword value"},
		"an array for a scalar":    {func(m map[string]any) { obj(m, "user")["name"] = []any{"a", "b"} }, "a single value expected"},
		"user.id as a number":      {func(m map[string]any) { obj(m, "user")["id"] = json.Number("42") }, "type keyword wants a string"},
		"keyword over ignore_above": {func(m map[string]any) { obj(m, "event")["reason"] = strings.Repeat("r", 1025) },
			"over ignore_above 1024"},
	} {
		t.Run(name, func(t *testing.T) {
			errs := s.Check(doc(t, c.edit))
			if !strings.Contains(Join(errs), c.want) {
				t.Errorf("errors %s\nwant one containing %q", Join(errs), c.want)
			}
		})
	}
}
