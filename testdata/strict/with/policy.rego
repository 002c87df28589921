# `with` inside a policy. It only changes what the expression it is on
# sees; a built-in error inside a `with`-scoped evaluation, or inside a
# function that replaces a built-in, is still an evaluation error.
package strict.with

# blocked errors on every POST; the `with` does not hide it.
blocked if to_number(input.request.method) > 0

scoped := {"allow": true} if {
	not blocked with input.extra as 1
}

# A user function replacing a built-in: its own errors count too.
lenient(x) := to_number(x)

replaced := {"allow": true} if {
	not numeric with to_number as lenient
}

numeric if to_number(input.request.method) > 0

# Replacing a built-in with a value is the author's explicit choice: no
# built-in runs, so nothing errors, and the decision follows the mock.
mocked := {"allow": true, "reasons": ["mocked"]} if {
	not numeric with to_number as 0
}
