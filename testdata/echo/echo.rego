# Test policy for input_schema_test.go: it refuses every reset and echoes
# the input document it was given as the single reason (JSON), so that a
# test can read the handler's real input back from the 403 error body and
# check it against testdata/schema/resetguard.input.v1.schema.json.
# Never use it in front of a real backend: it shows the policy input to
# the client. Query: data.resetguard.echo.decision
package resetguard.echo

default decision := {"allow": false, "reasons": ["echo_failed"], "status": 403}

decision := {"allow": false, "reasons": [json.marshal(input)], "status": 403}
