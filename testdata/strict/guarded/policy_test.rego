package strict.guarded_test

import data.strict.guarded

test_post_is_not_blocked if {
	guarded.decision.allow with input as {"request": {"method": "POST"}}
}

test_numeric_method_is_blocked if {
	not guarded.decision.allow with input as {"request": {"method": "7"}}
}
