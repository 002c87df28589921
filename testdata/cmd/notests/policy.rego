# Fixture for the cli package's tests: a policy without any unit test.
package resetguard.cmdnotests

default allow := false
