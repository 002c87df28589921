package integration_test

// The directive order: reset_guard written at a site's top level guards
// every route that comes after it, also when the proxy sits inside a
// handle, handle_path, route or nested handle block (which Caddy would
// otherwise run first, skipping the guard).

import "testing"

func TestResetGuardedInsideRoutingBlocks(t *testing.T) {
	sites := []struct{ name, base, prefix string }{
		{"handle", handleURL, ""},
		{"handle_path", handlePathURL, "/gw"},
		{"route", routeURL, ""},
		{"nested handle", nestedURL, ""},
	}
	var cases []itCase
	for _, s := range sites {
		cases = append(cases,
			itCase{name: s.name + ": no credentials refused", base: s.base, method: "POST", path: s.prefix + restReset,
				wantStatus: 401, wantReason: "missing_credentials", wantAudit: deniedRecord(401, "missing_credentials")},
			itCase{name: s.name + ": denied user refused", base: s.base, method: "POST", path: s.prefix + restReset,
				headers: map[string]string{"Authorization": basic("mallory", "pw")}, wantStatus: 403,
				wantReason: "mallory_refused", wantAudit: deniedRecord(403, "mallory_refused")},
			itCase{name: s.name + ": allowed reset forwarded", base: s.base, method: "POST", path: s.prefix + restReset,
				headers: botAuth, wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "basic")},
		)
	}
	runCases(t, cases)
}
