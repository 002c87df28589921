package cli

// The tests live in package cli_test: decoding a config needs the
// reset_guard module registered, and the package that registers it
// imports this one. These names open the commands' cores to them.

type (
	EvalOptions   = evalOptions
	EvalTimings   = evalTimings
	TestOptions   = testOptions
	VerifyOptions = verifyOptions
)

var (
	RunPolicyEval  = runPolicyEval
	RunPolicyTest  = runPolicyTest
	RunAuditVerify = runAuditVerify
	Timings        = timings
	DecodeHandler  = decodeHandler
)

const (
	ExitOK        = exitOK
	ExitError     = exitError
	ExitVerdict   = exitVerdict
	ExitEvalFail  = exitEvalFail
	ExitEvalError = exitEvalError
)
