package resetguard.examples.own_sessions_test

import data.resetguard.examples.own_sessions

fp := "0123456789abcdef0123456789abcdef"

sare := {"AssociateId": 9, "Name": "sare", "PersonId": 31, "Type": "InternalAssociate", "UserName": "sare"}

# The ChatSessionEntity as the lookup hands it to the policy (secrets and
# customer fields already removed).
session(user) := {
	"ChatSessionId": 427,
	"TopicId": 103,
	"User": user,
	"TransferTo": null,
	"Status": "UserLast",
	"ChatbotIsActive": false,
	"InitialQueuePos": 4,
	"WhenRequested": "2026-11-25T08:58:01.4130440+01:00",
}

agent(id) := {"source": "backend", "associate_id": id, "user_type": "InternalAssociate", "subject": "agent"}

system_user := {"source": "backend", "associate_id": 3, "user_type": "SystemAssociate", "subject": "sys"}

req(principal, sess) := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": "Cust12345",
	"credential": {"scheme": "bearer", "kind": "superoffice_token", "fingerprint": fp, "tenant": "Cust12345"},
	"principal": principal,
	"session": sess,
	"time": "2026-11-25T10:00:00Z",
}

# The same, as the guard sends it without a session lookup.
no_lookup(principal) := object.remove(req(principal, {}), ["session"])

decide(inp) := d if d := own_sessions.decision with input as inp

test_agent_may_reset_own_session if {
	decide(req(agent(9), session(sare))) == {"allow": true, "reasons": ["own_session"]}
}

test_agent_may_not_reset_another_agents_session if {
	decide(req(agent(10), session(sare))) == {"allow": false, "reasons": ["not_session_owner"]}
}

test_agent_from_jwt_may_reset_own_session if {
	p := {"source": "jwt", "associate_id": 9, "subject": "sare@cust12345", "claims": {"http://schemes.superoffice.net/identity/associateid": "9"}}
	decide(req(p, session(sare))).allow
}

test_agent_may_not_reset_unassigned_session if {
	decide(req(agent(9), session(null))) == {"allow": false, "reasons": ["session_unassigned"]}
}

test_session_without_user_key_counts_as_unassigned if {
	decide(req(agent(9), object.remove(session(null), ["User"]))) == {"allow": false, "reasons": ["session_unassigned"]}
}

test_user_without_associate_id_counts_as_unassigned if {
	decide(req(agent(9), session({"Name": "ghost"}))) == {"allow": false, "reasons": ["session_unassigned"]}
}

test_pending_transfer_to_caller_is_not_ownership if {
	sess := object.union(session(sare), {"TransferTo": {"AssociateId": 10, "Name": "tom"}})
	decide(req(agent(10), sess)) == {"allow": false, "reasons": ["not_session_owner"]}
}

test_system_associate_may_reset_any_session if {
	decide(req(system_user, session(sare))) == {"allow": true, "reasons": ["system_associate"]}
	decide(req(system_user, session(null))) == {"allow": true, "reasons": ["system_associate"]}
	decide(req(system_user, session({"AssociateId": 77}))) == {"allow": true, "reasons": ["system_associate"]}
}

test_system_associate_may_reset_a_session_it_holds if {
	decide(req(system_user, session({"AssociateId": 3}))) == {"allow": true, "reasons": ["system_associate"]}
}

test_no_lookup_refuses_agents if {
	decide(no_lookup(agent(9))) == {"allow": false, "reasons": ["session_unknown"]}
}

test_no_lookup_refuses_bots_too if {
	decide(no_lookup(system_user)) == {"allow": false, "reasons": ["session_unknown"]}
}

test_null_session_is_unknown if {
	decide(req(agent(9), null)) == {"allow": false, "reasons": ["session_unknown"]}
}

test_non_object_session_is_unknown if {
	decide(req(agent(9), [session(sare)])) == {"allow": false, "reasons": ["session_unknown"]}
}

test_entity_of_another_session_is_refused if {
	sess := object.union(session(sare), {"ChatSessionId": 428})
	decide(req(agent(9), sess)) == {"allow": false, "reasons": ["session_mismatch"]}
	decide(req(system_user, sess)) == {"allow": false, "reasons": ["session_mismatch"]}
}

test_entity_without_id_is_refused if {
	sess := object.remove(session(sare), ["ChatSessionId"])
	decide(req(system_user, sess)) == {"allow": false, "reasons": ["session_mismatch"]}
}

test_unverified_principal_is_unknown if {
	decide(no_lookup({"source": "none"})) == {"allow": false, "reasons": ["principal_unknown", "session_unknown"]}
	decide(req({"source": "none"}, session(sare))) == {"allow": false, "reasons": ["principal_unknown"]}
}

test_unverified_associate_id_does_not_count if {
	decide(req({"source": "none", "associate_id": 9}, session(sare))) == {"allow": false, "reasons": ["principal_unknown"]}
}

test_unverified_system_associate_is_not_a_bot if {
	decide(req({"source": "none", "user_type": "SystemAssociate"}, session(sare))) == {"allow": false, "reasons": ["principal_unknown"]}
}

test_verified_principal_without_associate_id_is_unknown if {
	decide(req({"source": "jwt", "subject": "someone"}, session(sare))) == {"allow": false, "reasons": ["principal_unknown"]}
}

test_associate_id_zero_owns_nothing if {
	decide(req(agent(0), session({"AssociateId": 0}))) == {"allow": false, "reasons": ["principal_unknown"]}
}

test_associate_id_as_string_does_not_count if {
	decide(req(agent("9"), session(sare))) == {"allow": false, "reasons": ["principal_unknown"]}
}

test_associate_id_compared_as_number if {
	# 9 and 9.0 are the same number in JSON.
	decide(req(agent(9), session({"AssociateId": 9.0}))).allow
}

test_all_reasons_are_listed_sorted if {
	sess := object.union(session(null), {"ChatSessionId": 1})
	decide(req(agent(9), sess)) == {"allow": false, "reasons": ["session_mismatch", "session_unassigned"]}
}

test_decision_shape if {
	every inp in [req(agent(9), session(sare)), req(agent(1), session(sare)), no_lookup(agent(9)), {}] {
		object.keys(decide(inp)) == {"allow", "reasons"}
	}
}
