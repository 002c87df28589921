# Test policy for the identity integration tests: only bots may hand off,
# recognised by the backend principal's user type or by a verified JWT's
# "role" claim.
package resetguard.identity

default decision := {"allow": false, "reasons": ["not_a_bot"]}

decision := {"allow": true, "reasons": ["system_associate"]} if {
	input.principal.source == "backend"
	input.principal.user_type == "SystemAssociate"
}

decision := {"allow": true, "reasons": ["jwt_bot"]} if {
	input.principal.source == "jwt"
	input.principal.claims.role == "bot"
}
