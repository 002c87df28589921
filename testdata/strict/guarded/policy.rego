# The fail-open policy, fixed as the README's policy contract asks: the
# call that can fail is guarded, so an error cannot occur and a method
# that is not a number is simply not blocked.
package strict.guarded

default decision := {"allow": false}

decision := {"allow": true, "reasons": ["not_blocked"]} if not blocked

blocked if {
	regex.match(`^[0-9]+$`, input.request.method)
	to_number(input.request.method) > 0
}
