# Fixture: a type error on line 7 (a number plus a string). Used by
# policy/engine_test.go and cli/test_test.go; kept out of testdata/policies.
package resetguard.broken.typeerr

default decision := false

decision if input.session_id + "one" > 1
