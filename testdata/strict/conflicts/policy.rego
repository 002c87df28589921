# Conflicting rules: each is an evaluation error (eval_conflict_error),
# so 503 policy_error, never whichever value came first.
package strict.conflicts

# Two complete definitions with different values.
complete := {"allow": true}

complete := {"allow": false} if input.session_id == 427

# Two values for one key of a partial object.
object_key.allow := true

object_key.allow := false if input.session_id == 427

# A function with two outputs for the same argument.
f(x) := true if x > 0

f(x) := false if x == 427

function := {"allow": f(input.session_id)}

# else branches do not conflict: the first that applies wins.
with_else := {"allow": false, "reasons": ["first"]} if {
	input.session_id == 427
} else := {"allow": true}
