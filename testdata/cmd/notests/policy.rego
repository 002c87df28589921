# Fixture for command_test.go: a policy without any unit test.
package resetguard.cmdnotests

default allow := false
