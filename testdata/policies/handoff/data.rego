# Data of the handoff example, at data.handoff: the bots that may hand off
# (by Basic user name or verified subject, each in its own tenant; "" is
# onsite) and the sessions never reset through the gateway.
#
# A Rego module rather than a data.json: OPA places a JSON data file at its
# directory's path relative to the folder loaded, so it would land one level
# deeper (data.handoff.handoff) when testdata/policies is loaded instead of
# this directory; a module lands at its package wherever it is loaded from.
package handoff

bots := [
	{"name": "onsite-chatbot", "username": "chatbot", "tenant": ""},
	{"name": "cust12345-bot", "username": "cust12345-bot", "subject": "bot@cust12345", "tenant": "Cust12345"},
]

protected_sessions := [1]
