package policy

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

// invalidResult is what every invalid policy result becomes.
var invalidResult = Decision{Allow: false, Reasons: []string{ReasonInvalid}}

// parseResultCases are policy results, as OPA hands them over, and the
// decision each must give.
var parseResultCases = []struct {
	name string
	in   any
	want Decision
}{
	// Valid results.
	{"true", true, Decision{Allow: true}},
	{"false", false, Decision{Allow: false}},
	{"object allow", map[string]any{"allow": true}, Decision{Allow: true}},
	{"object deny", map[string]any{"allow": false}, Decision{Allow: false}},
	{"empty reasons", map[string]any{"allow": false, "reasons": []any{}}, Decision{}},
	{"full object", map[string]any{
		"allow":   false,
		"reasons": []any{"a", "b"},
		"status":  json.Number("423"),
		"headers": map[string]any{"X-A": "1", "x-b": []any{"2", "3"}},
	}, Decision{
		Allow:   false,
		Reasons: []string{"a", "b"},
		Status:  423,
		Headers: http.Header{"X-A": {"1"}, "X-B": {"2", "3"}},
	}},
	{"allow with headers", map[string]any{
		"allow":   true,
		"reasons": []any{"listed_bot"},
		"headers": map[string]any{"x-resetguard-bot": "onsite-chatbot"},
	}, Decision{
		Allow:   true,
		Reasons: []string{"listed_bot"},
		Headers: http.Header{"X-Resetguard-Bot": {"onsite-chatbot"}},
	}},
	{"status 400", map[string]any{"allow": false, "status": json.Number("400")}, Decision{Status: 400}},
	{"status 599", map[string]any{"allow": false, "status": json.Number("599")}, Decision{Status: 599}},
	{"empty headers", map[string]any{"allow": true, "headers": map[string]any{}}, Decision{Allow: true, Headers: http.Header{}}},
	{"empty header value", map[string]any{"allow": true, "headers": map[string]any{"X-Empty": ""}}, Decision{Allow: true, Headers: http.Header{"X-Empty": {""}}}},

	// Invalid results: all deny with ReasonInvalid.
	{"nil", nil, invalidResult},
	{"string", "allow", invalidResult},
	{"string true", "true", invalidResult},
	{"number", json.Number("1"), invalidResult},
	{"go int", 1, invalidResult},
	{"array", []any{true}, invalidResult},
	{"empty object", map[string]any{}, invalidResult},
	{"missing allow", map[string]any{"reasons": []any{"a"}}, invalidResult},
	{"allow null", map[string]any{"allow": nil}, invalidResult},
	{"allow string", map[string]any{"allow": "true"}, invalidResult},
	{"allow number", map[string]any{"allow": json.Number("1")}, invalidResult},
	{"reasons string", map[string]any{"allow": false, "reasons": "a"}, invalidResult},
	{"reasons object", map[string]any{"allow": false, "reasons": map[string]any{"a": true}}, invalidResult},
	{"reasons with number", map[string]any{"allow": false, "reasons": []any{"a", json.Number("1")}}, invalidResult},
	{"reasons with null", map[string]any{"allow": false, "reasons": []any{nil}}, invalidResult},
	{"reasons []string", map[string]any{"allow": false, "reasons": []string{"a"}}, invalidResult},
	{"status 200", map[string]any{"allow": false, "status": json.Number("200")}, invalidResult},
	{"status 399", map[string]any{"allow": false, "status": json.Number("399")}, invalidResult},
	{"status 600", map[string]any{"allow": false, "status": json.Number("600")}, invalidResult},
	{"status 0", map[string]any{"allow": false, "status": json.Number("0")}, invalidResult},
	{"status negative", map[string]any{"allow": false, "status": json.Number("-403")}, invalidResult},
	{"status string", map[string]any{"allow": false, "status": "403"}, invalidResult},
	{"status fraction", map[string]any{"allow": false, "status": json.Number("403.5")}, invalidResult},
	{"status exponent", map[string]any{"allow": false, "status": json.Number("4.03e2")}, invalidResult},
	{"status huge", map[string]any{"allow": false, "status": json.Number("18446744073709551616403")}, invalidResult},
	{"status go int", map[string]any{"allow": false, "status": 403}, invalidResult},
	{"status bool", map[string]any{"allow": false, "status": true}, invalidResult},
	{"unknown key", map[string]any{"allow": true, "reason": []any{"typo"}}, invalidResult},
	{"unknown key on deny", map[string]any{"allow": false, "extra": json.Number("1")}, invalidResult},
	{"headers not an object", map[string]any{"allow": true, "headers": []any{"X-A: 1"}}, invalidResult},
	{"headers string", map[string]any{"allow": true, "headers": "X-A: 1"}, invalidResult},
	{"header name with space", map[string]any{"allow": true, "headers": map[string]any{"Bad Header": "1"}}, invalidResult},
	{"header name empty", map[string]any{"allow": true, "headers": map[string]any{"": "1"}}, invalidResult},
	{"header name with colon", map[string]any{"allow": true, "headers": map[string]any{"X-A:": "1"}}, invalidResult},
	{"header value with LF", map[string]any{"allow": true, "headers": map[string]any{"X-A": "1\nX-Injected: 2"}}, invalidResult},
	{"header value with CR", map[string]any{"allow": true, "headers": map[string]any{"X-A": "1\r"}}, invalidResult},
	{"header value with NUL", map[string]any{"allow": true, "headers": map[string]any{"X-A": "1\x00"}}, invalidResult},
	{"header list value with LF", map[string]any{"allow": true, "headers": map[string]any{"X-A": []any{"ok", "b\nad"}}}, invalidResult},
	{"header value number", map[string]any{"allow": true, "headers": map[string]any{"X-A": json.Number("1")}}, invalidResult},
	{"header value bool", map[string]any{"allow": true, "headers": map[string]any{"X-A": true}}, invalidResult},
	{"header value null", map[string]any{"allow": true, "headers": map[string]any{"X-A": nil}}, invalidResult},
	{"header list with number", map[string]any{"allow": true, "headers": map[string]any{"X-A": []any{"1", json.Number("2")}}}, invalidResult},
	{"header value object", map[string]any{"allow": true, "headers": map[string]any{"X-A": map[string]any{"v": "1"}}}, invalidResult},
	// An invalid part anywhere spoils an allow: the whole result is
	// invalid, never a partial allow.
	{"allow with bad status", map[string]any{"allow": true, "status": json.Number("200")}, invalidResult},
	{"allow with bad reasons", map[string]any{"allow": true, "reasons": []any{true}}, invalidResult},
}

func TestParseResult(t *testing.T) {
	for _, tt := range parseResultCases {
		t.Run(tt.name, func(t *testing.T) {
			// Map iteration order varies: repeat so an order-dependent
			// result would show.
			for i := 0; i < 20; i++ {
				got := ParseResult(tt.in)
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ParseResult(%#v)\n got %#v\nwant %#v", tt.in, got, tt.want)
				}
			}
		})
	}
}

// TestParseResultInvalidIsFreshSlice checks that the ReasonInvalid slice
// handed out is not shared, so a caller appending to one decision's
// reasons cannot change another's.
func TestParseResultInvalidIsFreshSlice(t *testing.T) {
	a := ParseResult(nil)
	b := ParseResult(nil)
	a.Reasons[0] = "changed"
	if b.Reasons[0] != ReasonInvalid {
		t.Fatalf("invalid decisions share their Reasons slice: %q", b.Reasons)
	}
}
