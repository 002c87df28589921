# METADATA
# title: Agents reset only their own sessions
# description: |
#   An agent may reset (hand back to the queue) only a chat session assigned
#   to them: input.session.User.AssociateId must equal the caller's verified
#   input.principal.associate_id. A bot (verified principal with user_type
#   SystemAssociate) may reset any session.
#
#   The policy needs the pre-reset session lookup (input.session, the
#   ChatSessionEntity as the backend returned it). Without it every reset is
#   refused with "session_unknown", bots included: a policy that cannot see
#   the session cannot vouch for it, and the refusal makes the missing
#   lookup visible. Other refusals:
#   - "session_mismatch": the entity is not the requested session;
#   - "principal_unknown": no verified principal with an associate id;
#   - "session_unassigned": no agent holds the session (User null or absent);
#   - "not_session_owner": another agent holds it (a pending TransferTo the
#     caller does not make the caller the owner).
#   Query: data.resetguard.examples.own_sessions.decision
package resetguard.examples.own_sessions

default decision := {"allow": false, "reasons": ["not_session_owner"]}

decision := {"allow": true, "reasons": ["system_associate"]} if {
	count(deny) == 0
	bot
}

decision := {"allow": true, "reasons": ["own_session"]} if {
	count(deny) == 0
	not bot
	owner
}

decision := {"allow": false, "reasons": sort([r | some r in deny])} if count(deny) > 0

deny contains "session_unknown" if not session_known

deny contains "session_mismatch" if {
	session_known
	not session_matches
}

deny contains "principal_unknown" if {
	not bot
	not associate_id
}

deny contains "session_unassigned" if {
	not bot
	associate_id
	session_known
	not holder
}

deny contains "not_session_owner" if {
	not bot
	holder != associate_id
}

# The lookup handed over an entity, and it is the requested session's.
session_known if is_object(input.session)

session_matches if input.session.ChatSessionId == input.session_id

# A principal counts only when the guard established it.
verified if input.principal.source in {"jwt", "backend"}

bot if {
	verified
	input.principal.user_type == "SystemAssociate"
}

# The caller's associate id, when verified and a real id.
associate_id := id if {
	verified
	id := input.principal.associate_id
	is_number(id)
	id > 0
}

# The associate id of the agent holding the session; undefined when the
# session is unassigned (User null or absent).
holder := id if {
	session_known
	user := object.get(input.session, "User", null)
	is_object(user)
	id := user.AssociateId
	is_number(id)
}

owner if holder == associate_id
