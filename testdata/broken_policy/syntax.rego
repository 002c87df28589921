# Fixture: a Rego syntax error on line 7 (a comparison with no right-hand
# side). Used by policy/engine_test.go; kept out of testdata/policies.
package resetguard.broken.syntax

default decision := false

decision if { input.session_id == }

other := 1
