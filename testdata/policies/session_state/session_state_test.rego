package resetguard.examples.session_state_test

import data.resetguard.examples.session_state

fp := "0123456789abcdef0123456789abcdef"

session(status) := {
	"ChatSessionId": 427,
	"TopicId": 103,
	"User": null,
	"TransferTo": null,
	"Status": status,
	"ChatbotIsActive": true,
	"InitialQueuePos": 0,
	"WhenRequested": "2026-11-25T08:58:01.413044Z",
	"WhenEnded": null,
}

req(sess) := {
	"action": "chat_session.reset",
	"route": "agents",
	"session_id": 427,
	"tenant": "",
	"credential": {"scheme": "soticket", "kind": "ticket", "fingerprint": fp, "tenant": ""},
	"principal": {"source": "none"},
	"session": sess,
	"time": "2026-11-25T10:00:00Z",
}

no_lookup := object.remove(req({}), ["session"])

decide(inp) := d if d := session_state.decision with input as inp

open_decision := {"allow": true, "reasons": ["session_open"]}

closed_decision := {"allow": false, "reasons": ["session_closed"]}

test_ongoing_and_waiting_sessions_may_be_reset if {
	every s in ["InQueue", "CustomerLast", "UserLast", "RequestPosted"] {
		decide(req(session(s))) == open_decision
	}
}

test_form_and_faq_states_may_be_reset if {
	every s in ["PreChatForm", "Faq", "OfflineForm", "Invalid"] {
		decide(req(session(s))) == open_decision
	}
}

test_finished_sessions_are_not_reset if {
	every s in ["Closed", "Finished", "Deleted", "ClosedFromQueue"] {
		decide(req(session(s))) == closed_decision
	}
}

test_status_names_compare_case_insensitively if {
	every s in ["closed", "FINISHED", "deleted", "closedFromQueue"] {
		decide(req(session(s))) == closed_decision
	}
	decide(req(session("inqueue"))) == open_decision
}

test_status_name_must_match_whole if {
	decide(req(session("Closed "))) == open_decision
	decide(req(session("NotClosed"))) == open_decision
}

test_unknown_future_state_may_be_reset if {
	decide(req(session("Parked"))) == open_decision
}

test_bot_sessions_follow_the_same_rule if {
	decide(req(object.union(session("InQueue"), {"ChatbotIsActive": true}))) == open_decision
	decide(req(object.union(session("Closed"), {"ChatbotIsActive": true}))) == closed_decision
}

test_no_lookup_is_refused if {
	decide(no_lookup) == {"allow": false, "reasons": ["session_unknown"]}
}

test_null_session_is_refused if {
	decide(req(null)) == {"allow": false, "reasons": ["session_unknown"]}
}

test_session_that_is_not_an_object_is_refused if {
	decide(req("Closed")) == {"allow": false, "reasons": ["session_unknown"]}
}

test_missing_status_is_refused if {
	decide(req(object.remove(session("InQueue"), ["Status"]))) == {"allow": false, "reasons": ["session_status_unknown"]}
}

test_null_empty_or_numeric_status_is_refused if {
	every s in [null, "", 9, 4, true] {
		decide(req(session(s))) == {"allow": false, "reasons": ["session_status_unknown"]}
	}
}

test_entity_of_another_session_is_refused if {
	decide(req(object.union(session("InQueue"), {"ChatSessionId": 428}))) == {"allow": false, "reasons": ["session_mismatch"]}
}

test_entity_without_id_is_refused if {
	decide(req(object.remove(session("InQueue"), ["ChatSessionId"]))) == {"allow": false, "reasons": ["session_mismatch"]}
}

test_all_reasons_are_listed_sorted if {
	sess := object.union(session("Closed"), {"ChatSessionId": 1})
	decide(req(sess)) == {"allow": false, "reasons": ["session_closed", "session_mismatch"]}
}

test_the_caller_does_not_matter if {
	inp := object.union(req(session("UserLast")), {"principal": {"source": "backend", "associate_id": 9, "user_type": "InternalAssociate"}})
	decide(inp) == open_decision
}

test_decision_shape if {
	every inp in [req(session("InQueue")), req(session("Closed")), no_lookup, {}] {
		object.keys(decide(inp)) == {"allow", "reasons"}
	}
}
