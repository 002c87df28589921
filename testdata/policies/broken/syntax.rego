# Fixture: a Rego syntax error on line 7 (a comparison with no right-hand
# side). Used by policy/engine_test.go; never loaded as a real policy.
package resetguard.broken.syntax

default decision := false

decision if { input.session_id == }

other := 1
