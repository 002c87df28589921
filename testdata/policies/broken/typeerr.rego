# Fixture: a type error on line 7 (a number plus a string). Used by
# policy/engine_test.go.
package resetguard.broken.typeerr

default decision := false

decision if input.session_id + "one" > 1
