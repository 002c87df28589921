# METADATA
# title: Only bots hand off
# description: |
#   Only a bot may reset a chat session (hand it from the bot to human
#   agents). A caller is a bot when
#   - its verified principal (source "jwt" or "backend") has user_type
#     SystemAssociate, the integration/system user; or
#   - its verified principal's subject is listed in
#     data.resetguard_examples.bots_only.bots; or
#   - it presented a Basic credential whose user name is listed there
#     (compared case-insensitively, as SuperOffice logins are), also when
#     the principal is not established (source "none": onsite bots; the
#     backend still checks the password).
#   An unverified principal (source "none") never counts by its user_type
#   or subject. Everyone else is refused with "not_a_bot".
#   Query: data.resetguard.examples.bots_only.decision
package resetguard.examples.bots_only

default decision := {"allow": false, "reasons": ["not_a_bot"]}

decision := {"allow": true, "reasons": sort([r | some r in bot])} if count(bot) > 0

# bot holds why the caller counts as a bot; empty for everyone else.
bot contains "system_associate" if {
	verified
	input.principal.user_type == "SystemAssociate"
}

bot contains "listed_bot" if {
	verified
	is_string(input.principal.subject)
	input.principal.subject in listed
}

bot contains "listed_bot" if {
	input.credential.kind == "basic"
	is_string(input.credential.username)
	lower(input.credential.username) in listed_lower
}

# A principal counts only when the guard established it.
verified if input.principal.source in {"jwt", "backend"}

listed := {b | some b in data.resetguard_examples.bots_only.bots; is_string(b); b != ""}

listed_lower := {lower(b) | some b in listed}
