package resetguard.cmdfailing_test

import data.resetguard.cmdfailing

test_chatbot_is_allowed if {
	cmdfailing.allow with input as {"credential": {"username": "chatbot"}}
}

# Deliberately wrong: agent7 is not allowed.
test_agent_is_allowed_fails if {
	cmdfailing.allow with input as {"credential": {"username": "agent7"}}
}
