# Issue 16's fail-open policy: `blocked` calls a built-in that errors on
# every POST. Under OPA's default the error made `blocked` undefined, so
# `not blocked` held and the reset was allowed. The gateway now evaluates
# with strict built-in errors: 503 policy_error.
package strict.failopen

default decision := {"allow": false}

decision := {"allow": true, "reasons": ["not_blocked"]} if not blocked

blocked if to_number(input.request.method) > 0
