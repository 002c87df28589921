# Fixture: a compile error on line 8 (the variable x is never bound, so the
# rule is unsafe). Used by policy/engine_test.go; not under testdata/policies.
package resetguard.broken.unsafe

default decision := false

decision if {
	x > 1
}
