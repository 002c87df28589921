# METADATA
# title: No hand-off of finished sessions
# description: |
#   A chat session that is over (input.session.Status Closed, Finished,
#   Deleted or ClosedFromQueue) is not reset: "session_closed". Every other
#   state may be reset, including states this policy does not know yet.
#
#   The policy needs the pre-reset session lookup (input.session, the
#   ChatSessionEntity as the backend returned it). Without it the reset is
#   refused with "session_unknown"; an entity of another session with
#   "session_mismatch"; an entity without a Status name with
#   "session_status_unknown". Status names are compared case-insensitively.
#   Query: data.resetguard.examples.session_state.decision
package resetguard.examples.session_state

default decision := {"allow": false, "reasons": ["session_unknown"]}

decision := {"allow": true, "reasons": ["session_open"]} if count(deny) == 0

decision := {"allow": false, "reasons": sort([r | some r in deny])} if count(deny) > 0

# ChatSessionStatus names of a session that is over.
closed_states := {"closed", "finished", "deleted", "closedfromqueue"}

deny contains "session_unknown" if not session_known

deny contains "session_mismatch" if {
	session_known
	not session_matches
}

deny contains "session_status_unknown" if {
	session_known
	not status
}

deny contains "session_closed" if status in closed_states

session_known if is_object(input.session)

session_matches if input.session.ChatSessionId == input.session_id

# The session's status name, lower-cased; undefined when absent or not a
# name.
status := lower(s) if {
	session_known
	s := input.session.Status
	is_string(s)
	s != ""
}
