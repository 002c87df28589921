package integration_test

// The directive order: reset_guard written at a site's top level guards
// every route that comes after it, also when the proxy sits inside a
// handle, handle_path, route or nested handle block (which Caddy would
// otherwise run first, skipping the guard).

import (
	"net/http"
	"testing"
)

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

// TestResetFramingRefused: what reverse_proxy would change after the
// guard decided is refused: a Connection header naming headers (the proxy
// strips them, e.g. the Authorization the guard judged) and trailers
// (fields arriving after the body the guard read).
func TestResetFramingRefused(t *testing.T) {
	runRawCases(t, []rawCase{
		{name: "Connection names Authorization", target: restReset, auth: "bot", headers: []string{"Connection: Authorization"},
			wantStatus: 400, wantReason: "connection_header_refused", wantAudit: 1},
		{name: "Connection names a custom header", target: restReset, auth: "bot", headers: []string{"X-Bot: 1", "Connection: keep-alive, X-Bot"},
			wantStatus: 400, wantReason: "connection_header_refused", wantAudit: 1},
		{name: "declared trailers", target: restReset, auth: "bot", headers: []string{"Trailer: X-Session"},
			framing: "Transfer-Encoding: chunked\r\n\r\n0\r\nX-Session: 1\r\n\r\n", wantStatus: 400, wantReason: "trailers_refused", wantAudit: 1},
	})
}

// TestURLOverrideHeadersStripped: IIS URL Rewrite and ARR route by
// X-Original-URL and X-Rewrite-URL, so a request the guard passes as
// harmless could reach Reset behind it: the headers never reach the
// backend, on any request.
func TestURLOverrideHeadersStripped(t *testing.T) {
	noOverride := func(t *testing.T, _ *http.Response, _ []byte, _ map[string]any, got []received) {
		for _, h := range []string{"X-Original-Url", "X-Rewrite-Url"} {
			if len(got) != 1 || got[0].Header.Get(h) != "" {
				t.Errorf("backend received %s: %v", h, got)
			}
		}
	}
	override := map[string]string{"X-Original-URL": restReset, "X-Rewrite-URL": restReset, "Authorization": basic("mallory", "pw")}
	runCases(t, []itCase{
		{name: "on a pass-through request", method: "GET", path: "/api/v1/Contact/5", headers: override,
			wantStatus: 200, wantForwarded: true, check: noOverride},
		{name: "on an allowed reset", method: "POST", path: restReset,
			headers:    map[string]string{"X-Original-URL": "/api/v1/ChatSession/9/Reset", "Authorization": botAuth["Authorization"]},
			wantStatus: 200, wantForwarded: true, wantAudit: allowedRecord(427, "basic"), check: noOverride},
	})
}

// TestCookielessSegmentsGuarded: System.Web removes ASP.NET
// cookieless-state segments before routing, so a path carrying one still
// reaches Reset and is guarded.
func TestCookielessSegmentsGuarded(t *testing.T) {
	runCases(t, []itCase{
		{name: "segment before Reset, no credentials", method: "POST", path: "/api/v1/ChatSession/427/(S(abc))/Reset",
			wantStatus: 401, wantReason: "missing_credentials", wantAudit: deniedRecord(401, "missing_credentials")},
		{name: "segments before api, denied user", method: "POST", path: "/(A(x))(F(y))/api/v1/ChatSession/427/Reset",
			headers: map[string]string{"Authorization": basic("mallory", "pw")}, wantStatus: 403,
			wantReason: "mallory_refused", wantAudit: deniedRecord(403, "mallory_refused")},
	})
}
