# Fixture for the cli package's tests: a Rego syntax error on line 6 (a comparison
# with no right-hand side).
package resetguard.cmdbroken

default allow := false
allow if { input.session_id == }
