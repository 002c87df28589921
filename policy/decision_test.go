package policy

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

func TestParseResult(t *testing.T) {
	deny := Decision{Allow: false, Reasons: []string{ReasonInvalid}}
	tests := []struct {
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
		{"nil", nil, deny},
		{"string", "allow", deny},
		{"string true", "true", deny},
		{"number", json.Number("1"), deny},
		{"go int", 1, deny},
		{"array", []any{true}, deny},
		{"empty object", map[string]any{}, deny},
		{"missing allow", map[string]any{"reasons": []any{"a"}}, deny},
		{"allow null", map[string]any{"allow": nil}, deny},
		{"allow string", map[string]any{"allow": "true"}, deny},
		{"allow number", map[string]any{"allow": json.Number("1")}, deny},
		{"reasons string", map[string]any{"allow": false, "reasons": "a"}, deny},
		{"reasons object", map[string]any{"allow": false, "reasons": map[string]any{"a": true}}, deny},
		{"reasons with number", map[string]any{"allow": false, "reasons": []any{"a", json.Number("1")}}, deny},
		{"reasons with null", map[string]any{"allow": false, "reasons": []any{nil}}, deny},
		{"reasons []string", map[string]any{"allow": false, "reasons": []string{"a"}}, deny},
		{"status 200", map[string]any{"allow": false, "status": json.Number("200")}, deny},
		{"status 399", map[string]any{"allow": false, "status": json.Number("399")}, deny},
		{"status 600", map[string]any{"allow": false, "status": json.Number("600")}, deny},
		{"status 0", map[string]any{"allow": false, "status": json.Number("0")}, deny},
		{"status negative", map[string]any{"allow": false, "status": json.Number("-403")}, deny},
		{"status string", map[string]any{"allow": false, "status": "403"}, deny},
		{"status fraction", map[string]any{"allow": false, "status": json.Number("403.5")}, deny},
		{"status exponent", map[string]any{"allow": false, "status": json.Number("4.03e2")}, deny},
		{"status huge", map[string]any{"allow": false, "status": json.Number("18446744073709551616403")}, deny},
		{"status go int", map[string]any{"allow": false, "status": 403}, deny},
		{"status bool", map[string]any{"allow": false, "status": true}, deny},
		{"unknown key", map[string]any{"allow": true, "reason": []any{"typo"}}, deny},
		{"unknown key on deny", map[string]any{"allow": false, "extra": json.Number("1")}, deny},
		{"headers not an object", map[string]any{"allow": true, "headers": []any{"X-A: 1"}}, deny},
		{"headers string", map[string]any{"allow": true, "headers": "X-A: 1"}, deny},
		{"header name with space", map[string]any{"allow": true, "headers": map[string]any{"Bad Header": "1"}}, deny},
		{"header name empty", map[string]any{"allow": true, "headers": map[string]any{"": "1"}}, deny},
		{"header name with colon", map[string]any{"allow": true, "headers": map[string]any{"X-A:": "1"}}, deny},
		{"header value with LF", map[string]any{"allow": true, "headers": map[string]any{"X-A": "1\nX-Injected: 2"}}, deny},
		{"header value with CR", map[string]any{"allow": true, "headers": map[string]any{"X-A": "1\r"}}, deny},
		{"header value with NUL", map[string]any{"allow": true, "headers": map[string]any{"X-A": "1\x00"}}, deny},
		{"header list value with LF", map[string]any{"allow": true, "headers": map[string]any{"X-A": []any{"ok", "b\nad"}}}, deny},
		{"header value number", map[string]any{"allow": true, "headers": map[string]any{"X-A": json.Number("1")}}, deny},
		{"header value bool", map[string]any{"allow": true, "headers": map[string]any{"X-A": true}}, deny},
		{"header value null", map[string]any{"allow": true, "headers": map[string]any{"X-A": nil}}, deny},
		{"header list with number", map[string]any{"allow": true, "headers": map[string]any{"X-A": []any{"1", json.Number("2")}}}, deny},
		{"header value object", map[string]any{"allow": true, "headers": map[string]any{"X-A": map[string]any{"v": "1"}}}, deny},
		// An invalid part anywhere spoils an allow: the whole result is
		// invalid, never a partial allow.
		{"allow with bad status", map[string]any{"allow": true, "status": json.Number("200")}, deny},
		{"allow with bad reasons", map[string]any{"allow": true, "reasons": []any{true}}, deny},
	}
	for _, tt := range tests {
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
