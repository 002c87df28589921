package classify

import (
	"net/http"
	"testing"
)

func TestMethodOverride(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   bool
	}{
		{"none", nil, false},
		{"other headers", map[string]string{"X-Http-Method-Override-Not": "GET", "Content-Type": "text/xml"}, false},
		{"X-HTTP-Method-Override", map[string]string{"X-HTTP-Method-Override": "PUT"}, true},
		{"X-HTTP-Method", map[string]string{"X-HTTP-Method": "DELETE"}, true},
		{"X-Method-Override", map[string]string{"X-Method-Override": "GET"}, true},
		{"lower case", map[string]string{"x-http-method-override": "GET"}, true},
		{"empty value", map[string]string{"X-Method-Override": ""}, true},
	} {
		h := http.Header{}
		for k, v := range tc.header {
			h.Set(k, v)
		}
		if got := MethodOverride(h); got != tc.want {
			t.Errorf("%s: MethodOverride(%v) = %v, want %v", tc.name, h, got, tc.want)
		}
	}
}
