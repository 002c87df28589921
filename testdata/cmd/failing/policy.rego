# Fixture for the cli package's tests: a tiny policy with one passing and one
# deliberately failing unit test (kept out of testdata/policies, whose
# directories policy/rego_test.go expects to pass).
package resetguard.cmdfailing

default allow := false

allow if input.credential.username == "chatbot"
