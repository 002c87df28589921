package policy

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// inputJSON converts an Input's OPA value into plain Go values (objects as
// map[string]any, arrays as []any, numbers as json.Number), as a policy
// sees it.
func inputJSON(t testing.TB, in *Input) map[string]any {
	t.Helper()
	v, err := ast.JSON(in.Value())
	if err != nil {
		t.Fatalf("ast.JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("Value() is a %T, not an object", v)
	}
	return m
}

func TestInputValueShape(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	in := &Input{
		Action:    "chat_session.reset",
		Route:     "rest",
		SessionID: 427,
		Tenant:    "Cust12345",
		Request: Request{
			ID:       "req-1",
			Method:   "POST",
			Path:     "/Cust12345/api/v1/ChatSession/427/Reset",
			Host:     "online.superoffice.com",
			RemoteIP: "192.0.2.10",
			Headers:  map[string][]string{"user-agent": {"bot/1.0"}, "accept": {"application/json", "text/json"}},
			Query:    map[string][]string{"lang": {"en"}},
		},
		Credential: Credential{Scheme: "bearer", Kind: "superoffice_token", Fingerprint: "hmac-abc", Tenant: "Cust12345"},
		Principal:  Principal{Source: "backend"},
		Time:       time.Date(2026, 11, 25, 11, 0, 0, 0, cet), // 10:00 UTC
	}
	want := map[string]any{
		"action":     "chat_session.reset",
		"route":      "rest",
		"session_id": json.Number("427"),
		"tenant":     "Cust12345",
		"request": map[string]any{
			"id":        "req-1",
			"method":    "POST",
			"path":      "/Cust12345/api/v1/ChatSession/427/Reset",
			"host":      "online.superoffice.com",
			"remote_ip": "192.0.2.10",
			"headers": map[string]any{
				"user-agent": []any{"bot/1.0"},
				"accept":     []any{"application/json", "text/json"},
			},
			"query": map[string]any{"lang": []any{"en"}},
		},
		"credential": map[string]any{
			"scheme":      "bearer",
			"kind":        "superoffice_token",
			"fingerprint": "hmac-abc",
			"tenant":      "Cust12345",
		},
		"principal": map[string]any{"source": "backend"},
		"time":      "2026-11-25T10:00:00Z",
	}
	if got := inputJSON(t, in); !reflect.DeepEqual(got, want) {
		t.Errorf("Value()\n got %#v\nwant %#v", got, want)
	}
}

func TestInputValueBasicUsername(t *testing.T) {
	in := botInput()
	got := inputJSON(t, in)["credential"]
	want := map[string]any{
		"scheme":      "basic",
		"kind":        "basic",
		"fingerprint": "fp",
		"tenant":      "",
		"username":    "chatbot",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("credential\n got %#v\nwant %#v", got, want)
	}
}

func TestInputValueSessionIDAbsent(t *testing.T) {
	for _, id := range []int32{0, -1} {
		in := botInput()
		in.SessionID = id
		got := inputJSON(t, in)
		if v, ok := got["session_id"]; ok {
			t.Errorf("SessionID %d: session_id = %v, want it absent", id, v)
		}
	}
	in := botInput()
	in.SessionID = 2147483647
	if got := inputJSON(t, in)["session_id"]; got != json.Number("2147483647") {
		t.Errorf("SessionID max int32: session_id = %#v", got)
	}
}

func TestInputValueEmptyMaps(t *testing.T) {
	in := &Input{Principal: Principal{Source: "none"}, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	got := inputJSON(t, in)
	req, _ := got["request"].(map[string]any)
	for _, k := range []string{"headers", "query"} {
		if v, ok := req[k].(map[string]any); !ok || len(v) != 0 {
			t.Errorf("request.%s with nil map = %#v, want an empty object", k, req[k])
		}
	}
	if got["time"] != "2026-01-02T03:04:05Z" {
		t.Errorf("time = %v", got["time"])
	}
	if _, ok := got["credential"].(map[string]any)["username"]; ok {
		t.Errorf("credential.username present though empty")
	}
}

// TestInputValueTime checks that the time is RFC 3339 in UTC and names the
// same instant, whatever the zone and precision of Input.Time.
func TestInputValueTime(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 25, 5, 0, 0, 0, time.FixedZone("EST", -5*3600)),
		time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.FixedZone("CET", 3600)),
	} {
		in := botInput()
		in.Time = ts
		s, ok := inputJSON(t, in)["time"].(string)
		if !ok {
			t.Fatalf("time is not a string")
		}
		if !strings.HasSuffix(s, "Z") {
			t.Errorf("time %q is not in UTC", s)
		}
		parsed, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Errorf("time %q is not RFC 3339: %v", s, err)
			continue
		}
		if !parsed.Equal(ts) {
			t.Errorf("time %q is not the instant %v", s, ts)
		}
	}
}

// TestInputValueCopiesOnlyGivenHeaders: Value() does not add headers of its
// own; credentials are kept out by the caller, which fills Headers from an
// allow-list. So the headers in the value are exactly those given, and no
// authorization or cookie appears unless the caller put it there.
func TestInputValueCopiesOnlyGivenHeaders(t *testing.T) {
	in := botInput()
	in.Request.Headers = map[string][]string{"user-agent": {"bot/1.0"}, "x-request-id": {"r1"}}
	req := inputJSON(t, in)["request"].(map[string]any)
	headers := req["headers"].(map[string]any)
	want := map[string]any{"user-agent": []any{"bot/1.0"}, "x-request-id": []any{"r1"}}
	if !reflect.DeepEqual(headers, want) {
		t.Errorf("headers\n got %#v\nwant %#v", headers, want)
	}
	for name := range headers {
		switch strings.ToLower(name) {
		case "authorization", "cookie", "x-xsrf-token", "so-apptoken":
			t.Errorf("header %q appeared though not given", name)
		}
	}
	// Nothing else in the document carries header values either.
	b, err := json.Marshal(inputJSON(t, in))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"authorization", "cookie", "Authorization", "Cookie"} {
		if strings.Contains(string(b), s) {
			t.Errorf("input document mentions %q: %s", s, b)
		}
	}

	// Value() is a faithful copy: what the caller gives, it passes on.
	in.Request.Headers["authorization"] = []string{"Basic eDp5"}
	headers = inputJSON(t, in)["request"].(map[string]any)["headers"].(map[string]any)
	if !reflect.DeepEqual(headers["authorization"], []any{"Basic eDp5"}) {
		t.Errorf("a header given by the caller was not copied: %#v", headers)
	}
}

// TestInputValueIndependent: the value does not alias the Input, so a
// caller reusing or changing an Input cannot change a value already built.
func TestInputValueIndependent(t *testing.T) {
	in := botInput()
	v := in.Value()
	before := v.String()
	in.Request.Headers["user-agent"][0] = "changed"
	in.Request.Headers["new"] = []string{"x"}
	in.Credential.Username = "other"
	if after := v.String(); after != before {
		t.Errorf("changing the Input changed its value:\n%s\n%s", before, after)
	}
}

func BenchmarkInputValue(b *testing.B) {
	in := botInput()
	in.Request.Query = map[string][]string{"lang": {"en"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = in.Value()
	}
}
