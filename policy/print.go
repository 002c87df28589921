package policy

import (
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/topdown/print"
	"go.uber.org/zap"
)

// A policy's print() output is operator debugging, not an audit record.
// In the gateway it goes to the Caddy logger
// http.handlers.reset_guard.policy at debug level, so that it is dropped
// unless an operator turns debug logging on for that logger. It is
// written as the policy printed it: the input holds no credential, but a
// policy can print anything its data documents hold, so the README tells
// authors not to print secrets. `policy eval` prints it on stderr, and
// `policy test` shows it with a failing test.

// maxPrintBytes bounds one print() line in the log: a policy that prints
// a whole document on every request must not flood it.
const maxPrintBytes = 4 << 10

// logPrinter is a print.Hook writing to a zap logger at debug level.
type logPrinter struct {
	log      *zap.Logger
	revision string
}

// newLogPrinter routes print() output of the engine with the given
// revision to log.
func newLogPrinter(log *zap.Logger, revision string) print.Hook {
	return logPrinter{log: log, revision: revision}
}

// Print never returns an error: with strict built-in errors, a hook error
// would make the decision an evaluation error, and whether a log line was
// written must not decide a reset.
func (p logPrinter) Print(pc print.Context, msg string) error {
	ce := p.log.Check(zap.DebugLevel, "policy print")
	if ce == nil {
		return nil
	}
	loc := ""
	if pc.Location != nil {
		loc = pc.Location.String()
	}
	truncated := len(msg) > maxPrintBytes
	if truncated {
		msg = truncateUTF8(msg, maxPrintBytes)
	}
	ce.Write(zap.String("location", loc), zap.String("output", msg),
		zap.Bool("truncated", truncated), zap.String("policy_revision", p.revision))
	return nil
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
