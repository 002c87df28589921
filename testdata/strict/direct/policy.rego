# A built-in error directly inside the decision. OPA's default made the
# decision undefined (a 403 policy_result_invalid); strict: 503
# policy_error, as for every evaluation error.
package strict.direct

decision := {"allow": to_number(input.request.method) > 0}
