// Package cli holds the reset_guard module's command-line tools: evaluating
// and unit-testing its OPA policy and verifying its durable audit chain,
// without starting a server.
//
// They are one Caddy command, "reset-guard", named after the module:
// Caddy panics at start-up when two plugins register the same command
// name, and generic names such as "policy" or "audit" are likely to be
// taken by another plugin of the same build.
//
// The package does not import the handler's package (which imports it, so
// that an xcaddy build with the module gets the command); it reaches a
// reset_guard handler config through Caddy's module registry instead.
package cli

import (
	"errors"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// commandName is the Caddy command the tools hang under.
const commandName = "reset-guard"

// Exit codes of the commands. The policy commands use OPA's, so that a
// script written for opa eval or opa test reads them alike:
//
//   - policy eval: 0 evaluated (allowed or denied), 1 a --fail,
//     --fail-defined or --fail-deny condition held, 2 an error;
//   - policy test: 0 all tests pass, 2 a test failed, 1 an error;
//   - audit verify: 0 chain intact, 2 chain broken, 1 an error.
const (
	exitOK = 0
	// exitError and exitVerdict are policy test's and audit verify's: the
	// command could not answer, or its answer is "no".
	exitError   = 1
	exitVerdict = 2
	// exitEvalFail and exitEvalError are policy eval's, as opa eval's: a
	// --fail* condition held, or the query could not be evaluated.
	exitEvalFail  = 1
	exitEvalError = 2
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  commandName,
		Usage: "policy eval|test | audit verify [<flags>] [<args>...]",
		Short: "Evaluates or unit-tests the reset_guard policy; verifies its audit chain",
		Long: `
Tools for the reset_guard handler that work without starting a server.

  reset-guard policy eval    evaluates a query (by default the decision
                             query) against one input document, as opa eval
  reset-guard policy test    runs the policy's Rego unit tests, as opa test
  reset-guard audit verify   checks the hash chain of the durable audit file

Run 'reset-guard policy --help' or 'reset-guard audit --help' for more.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(newPolicyCommand(), newAuditCommand())
		},
	})
}

func newPolicyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy eval|test [<flags>] [<paths>...]",
		Short: "Evaluates or unit-tests the reset_guard OPA policy",
		Long: `
Works with the Open Policy Agent policy that the reset_guard handler asks
before a chat session is reset, without starting a server.

  policy eval   evaluates a query (by default the decision query) against
                one input document (resetguard.input/v1), as opa eval does,
                and prints OPA's result with the handler's decision;
                exit status as opa eval: 0 evaluated (allowed or denied),
                1 a --fail/--fail-defined/--fail-deny condition held, 2 error.
  policy test   runs the policy's Rego unit tests (*_test.rego) with OPA's
                test runner and reporters, as opa test does; exit status
                as opa test: 0 all pass, 2 a test failed, 1 error.

Both compile and evaluate the policy as the handler does (strict built-in
errors, refused built-ins), and take opa eval's and opa test's flags with
their meanings where they overlap.

Run 'reset-guard policy eval --help' or 'reset-guard policy test --help' for
their flags.
`,
	}
	c.AddCommand(newPolicyEvalCommand(), newPolicyTestCommand())
	return c
}

func newAuditCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "audit verify [<flags>] <file>...",
		Short: "Verifies the hash chain of the reset_guard durable audit file",
		Long: `
Works with the durable, hash-chained audit file the reset_guard handler
writes (audit { file <path> }), without starting a server.

  audit verify   checks that no record of the file and its rotated
                 siblings was edited, deleted, inserted or reordered;
                 exit status 0 intact, 2 broken, 1 error.

Run 'reset-guard audit verify --help' for its flags.
`,
	}
	c.AddCommand(newAuditVerifyCommand())
	return c
}

// cobraRun adapts a command to cobra through Caddy's wrapper, which logs a
// returned error and turns an exit status above 1 into the process exit
// status. A failed test, a broken chain or a --fail condition is a
// verdict, already printed on stdout, not an error: nothing is logged and
// cobra is told not to print "exiting with status N" after it.
func cobraRun(run func(c *cobra.Command, fl caddycmd.Flags) (int, error)) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		silentFailure := false
		err := caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			code, err := run(c, fl)
			if code != exitOK && err == nil {
				c.SilenceErrors = true
			}
			if code == 1 && err == nil {
				// Caddy's wrapper exits 0 on (1, nil) and logs any error
				// it is given; an error returned past it, silenced, is
				// the process's exit status 1 and prints nothing.
				silentFailure = true
				return exitOK, nil
			}
			return code, err
		})(c, args)
		if silentFailure {
			return errExitStatus1
		}
		return err
	}
}

// errExitStatus1 ends a command with exit status 1 and no message: its
// verdict is on stdout already.
var errExitStatus1 = errors.New("exit status 1")
