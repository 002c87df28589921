package classify

import "net/http"

// methodOverrideHeaders let a client ask a framework to treat a request
// as another method. On a reset route they are refused, not interpreted:
// the guard cannot know which method the backend will honour.
var methodOverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// MethodOverride reports whether h carries any method-override header,
// with any value, an empty one included. h must be canonicalised, as the
// server's request headers are.
func MethodOverride(h http.Header) bool {
	for _, name := range methodOverrideHeaders {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}
