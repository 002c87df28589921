// Package integration holds the suites that run ResetGuard inside a real
// Caddy: one in-process Caddy (caddytest) with the reset_guard module,
// the real Rego test policies, a stand-in SuperOffice backend and a stand-in
// identity provider on loopback, and audit records in real files. The
// in-process suites share the one gateway that startGateway brings up, and
// read what it did from the backend's log of received requests and from
// the audit files. The crash test (crash_test.go) instead builds the
// gateway binary and kills the real process under load, on free ports.
//
// The package has no code of its own; its tests are the point. They live
// apart from the packages they exercise because caddytest runs one Caddy per
// test binary on fixed ports (admin localhost:2999, sites localhost:9080 to
// 9092): were two packages to use it, `go test ./...`, which runs packages
// in parallel, would start two servers on the same ports. Keep every test
// that starts caddytest here.
//
// Other checkouts of this module on the same machine use those ports too, so
// serialise runs across them:
//
//	flock /tmp/resetguard-caddytest.lock go test -race -count=1 ./integration/
//
// With -short the suites are skipped.
package integration
