package resetguard

import "strings"

// jwtJSON is a JWT identity inside every bound, with fields added.
func jwtJSON(fields ...string) string {
	all := append([]string{`"issuer": "https://idp.test"`, `"audiences": ["rg"]`, `"jwks_file": "jwks.json"`}, fields...)
	return `{"identity": {"jwt": {` + strings.Join(all, ", ") + `}}}`
}

// jwtCaddyfile is jwtJSON in the Caddyfile.
func jwtCaddyfile(options ...string) string {
	all := append([]string{"issuer https://idp.test", "audience rg", "jwks_file jwks.json"}, options...)
	return "identity {\njwt {\n" + strings.Join(all, "\n") + "\n}\n}"
}

var jwtBounds = []boundCase{
	{name: "inside every bound", json: jwtJSON(), caddyfile: jwtCaddyfile()},
	{name: "leeway negative", json: jwtJSON(`"leeway": "-1s"`), caddyfile: jwtCaddyfile("leeway -1s"),
		want: "reset_guard: identity.jwt.leeway -1s: want a duration in (0, 5m]"},
	{name: "leeway past 5m", json: jwtJSON(`"leeway": "5m1s"`), caddyfile: jwtCaddyfile("leeway 5m1s"),
		want: "reset_guard: identity.jwt.leeway 5m1s: want a duration in (0, 5m]"},
	{name: "leeway 5m", json: jwtJSON(`"leeway": "5m"`), caddyfile: jwtCaddyfile("leeway 5m")},
	{name: "refresh negative", json: jwtJSON(`"refresh": "-1m"`), caddyfile: jwtCaddyfile("refresh -1m"),
		want: "reset_guard: identity.jwt.refresh -1m: want a positive duration"},
	{name: "min refresh negative", json: jwtJSON(`"min_refresh": "-1s"`), caddyfile: jwtCaddyfile("min_refresh -1s"),
		want: "reset_guard: identity.jwt.min_refresh -1s: want a positive duration"},
	{name: "token bytes under 64", json: jwtJSON(`"max_token_bytes": 63`), caddyfile: jwtCaddyfile("max_token_bytes 63"),
		want: "reset_guard: identity.jwt.max_token_bytes 63: want a number of at least 64"},
	{name: "token bytes negative", json: jwtJSON(`"max_token_bytes": -1`), caddyfile: jwtCaddyfile("max_token_bytes -1"),
		want: "reset_guard: identity.jwt.max_token_bytes -1: want a number of at least 64"},
	{name: "token bytes 64", json: jwtJSON(`"max_token_bytes": 64`), caddyfile: jwtCaddyfile("max_token_bytes 64")},
	{name: "cache 1h, 1 entry", json: jwtJSON(`"cache_ttl": "1h"`, `"cache_max_entries": 1`),
		caddyfile: jwtCaddyfile("cache_ttl 1h", "cache_max_entries 1")},
	{name: "cache off", json: jwtJSON(`"cache_ttl": -1`), caddyfile: jwtCaddyfile("cache_ttl off")},
	{name: "cache TTL past 1h", json: jwtJSON(`"cache_ttl": "61m"`), caddyfile: jwtCaddyfile("cache_ttl 61m"),
		want: "reset_guard: identity.jwt.cache_ttl 1h1m: want a duration in (0, 1h], or off (-1)"},
	{name: "cache TTL negative", json: jwtJSON(`"cache_ttl": "-5m"`), caddyfile: jwtCaddyfile("cache_ttl -5m"),
		want: "reset_guard: identity.jwt.cache_ttl -5m: want a duration in (0, 1h], or off (-1)"},
	{name: "cache entries negative", json: jwtJSON(`"cache_max_entries": -1`), caddyfile: jwtCaddyfile("cache_max_entries -1"),
		want: "reset_guard: identity.jwt.cache_max_entries -1: want a positive number"},
	{name: "empty required claim", json: jwtJSON(`"required_claims": ["sub", ""]`), caddyfile: jwtCaddyfile(`required_claims sub ""`),
		want: `reset_guard: identity.jwt.required_claims "": want non-empty names`},
	{name: "empty audience", json: `{"identity": {"jwt": {"issuer": "https://idp.test", "audiences": ["rg", ""], "jwks_file": "jwks.json"}}}`,
		caddyfile: "identity {\njwt {\nissuer https://idp.test\naudience rg \"\"\njwks_file jwks.json\n}\n}",
		want:      `reset_guard: identity.jwt.audiences "": want non-empty names`},
	{name: "no audience", json: `{"identity": {"jwt": {"issuer": "https://idp.test", "jwks_file": "jwks.json"}}}`,
		caddyfile: "identity {\njwt {\nissuer https://idp.test\njwks_file jwks.json\n}\n}",
		want:      "reset_guard: identity.jwt.audiences: want at least one"},
	{name: "no issuer", json: `{"identity": {"jwt": {"audiences": ["rg"], "jwks_file": "jwks.json"}}}`,
		caddyfile: "identity {\njwt {\naudience rg\njwks_file jwks.json\n}\n}",
		want:      "reset_guard: identity.jwt.issuer: required"},
	{name: "both key sources", json: jwtJSON(`"jwks_url": "https://idp.test/jwks"`), caddyfile: jwtCaddyfile("jwks_url https://idp.test/jwks"),
		want: "reset_guard: identity.jwt: want jwks_file or jwks_url, not both"},
	{name: "no key source", json: `{"identity": {"jwt": {"issuer": "https://idp.test", "audiences": ["rg"]}}}`,
		caddyfile: "identity {\njwt {\nissuer https://idp.test\naudience rg\n}\n}",
		want:      "reset_guard: identity.jwt: want jwks_file or jwks_url"},
	{name: "key URL not http", json: `{"identity": {"jwt": {"issuer": "https://idp.test", "audiences": ["rg"], "jwks_url": "file:///etc/jwks"}}}`,
		caddyfile: "identity {\njwt {\nissuer https://idp.test\naudience rg\njwks_url file:///etc/jwks\n}\n}",
		want:      `reset_guard: identity.jwt.jwks_url "file:///etc/jwks": want an http(s) URL`},
}

// lookupJSON is a principal lookup inside every bound, with fields added.
func lookupJSON(fields string) string {
	return `{"identity": {"principal_lookup": {"upstream": "http://127.0.0.1:8081"` + fields + `}}}`
}

// lookupCaddyfile is lookupJSON in the Caddyfile.
func lookupCaddyfile(option string) string {
	return "identity {\nprincipal_lookup http://127.0.0.1:8081 {\n" + option + "\n}\n}"
}

var principalLookupBounds = []boundCase{
	{name: "inside every bound", json: lookupJSON(`, "timeout": "1ns", "ttl": "1ns", "max_entries": 1`),
		caddyfile: "identity {\nprincipal_lookup http://127.0.0.1:8081 {\ntimeout 1ns\nttl 1ns\nmax_entries 1\n}\n}"},
	{name: "upstream without scheme", json: `{"identity": {"principal_lookup": {"upstream": "127.0.0.1:8081"}}}`,
		caddyfile: "identity {\nprincipal_lookup 127.0.0.1:8081\n}",
		want:      `reset_guard: identity.principal_lookup.upstream "127.0.0.1:8081": want an http(s) URL`},
	{name: "timeout negative", json: lookupJSON(`, "timeout": "-1s"`), caddyfile: lookupCaddyfile("timeout -1s"),
		want: "reset_guard: identity.principal_lookup.timeout -1s: want a positive duration"},
	{name: "ttl negative", json: lookupJSON(`, "ttl": "-1s"`), caddyfile: lookupCaddyfile("ttl -1s"),
		want: "reset_guard: identity.principal_lookup.ttl -1s: want a positive duration"},
	{name: "max entries negative", json: lookupJSON(`, "max_entries": -1`), caddyfile: lookupCaddyfile("max_entries -1"),
		want: "reset_guard: identity.principal_lookup.max_entries -1: want a positive number"},
}
