# Run with `reset-guard policy test testdata/strict/failopen`: this test
# ERRORs with the to_number error, as the gateway refuses the request.
# It is a fixture of the strict-semantics tests, not an example to copy.
package strict.failopen_test

import data.strict.failopen

test_post_is_not_blocked if {
	failopen.decision.allow with input as {"request": {"method": "POST"}}
}
