package resetguard.examples.bots_only_test

import data.resetguard.examples.bots_only

fp := "0123456789abcdef0123456789abcdef"

# An onsite Basic call with no established principal, as the guard sends
# it today.
basic(user) := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": "",
	"credential": {"scheme": "basic", "kind": "basic", "fingerprint": fp, "tenant": "", "username": user},
	"principal": {"source": "none"},
	"time": "2026-11-25T10:00:00Z",
}

# An Online call with an 8A: token and the given principal.
online(principal) := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": "Cust12345",
	"credential": {"scheme": "bearer", "kind": "superoffice_token", "fingerprint": fp, "tenant": "Cust12345"},
	"principal": principal,
	"time": "2026-11-25T10:00:00Z",
}

allowed(inp, reasons) if {
	d := bots_only.decision with input as inp
	d == {"allow": true, "reasons": reasons}
}

refused(inp) if {
	d := bots_only.decision with input as inp
	d == {"allow": false, "reasons": ["not_a_bot"]}
}

test_listed_basic_user_without_principal_is_a_bot if {
	allowed(basic("chatbot"), ["listed_bot"])
}

test_listed_basic_user_matches_case_insensitively if {
	allowed(basic("ChatBot"), ["listed_bot"])
}

test_unlisted_basic_user_is_refused if {
	refused(basic("agent7"))
}

test_basic_user_name_must_match_whole if {
	refused(basic("chatbot2"))
	refused(basic("chat"))
	refused(basic(" chatbot"))
}

test_listed_basic_user_with_backend_principal_is_a_bot if {
	inp := object.union(basic("chatbot"), {"principal": {"source": "backend", "user_type": "InternalAssociate", "associate_id": 12}})
	allowed(inp, ["listed_bot"])
}

test_system_associate_from_backend_is_a_bot if {
	allowed(online({"source": "backend", "associate_id": 3, "user_type": "SystemAssociate", "subject": "sysuser"}), ["system_associate"])
}

test_system_associate_from_jwt_is_a_bot if {
	allowed(online({"source": "jwt", "user_type": "SystemAssociate", "subject": "spn:1234"}), ["system_associate"])
}

test_listed_jwt_subject_is_a_bot if {
	allowed(online({"source": "jwt", "subject": "bot@cust12345"}), ["listed_bot"])
	allowed(online({"source": "jwt", "subject": "https://idp.example.com/bots/handoff"}), ["listed_bot"])
}

test_listed_backend_subject_is_a_bot if {
	allowed(online({"source": "backend", "subject": "cust12345-bot", "user_type": "InternalAssociate"}), ["listed_bot"])
}

test_system_associate_and_listed_subject_give_both_reasons if {
	allowed(online({"source": "backend", "subject": "bot@cust12345", "user_type": "SystemAssociate"}), ["listed_bot", "system_associate"])
}

test_subject_is_compared_exactly if {
	refused(online({"source": "jwt", "subject": "BOT@cust12345"}))
}

test_human_agent_is_refused if {
	refused(online({"source": "backend", "associate_id": 9, "user_type": "InternalAssociate", "subject": "sare"}))
}

test_other_user_types_are_refused if {
	every t in ["Unknown", "InternalAssociate", "ResourceAssociate", "ExternalAssociate", "AnonymousAssociate"] {
		refused(online({"source": "backend", "user_type": t, "subject": "someone"}))
	}
}

test_unverified_system_associate_is_refused if {
	refused(online({"source": "none", "user_type": "SystemAssociate"}))
}

test_unverified_listed_subject_is_refused if {
	refused(online({"source": "none", "subject": "bot@cust12345"}))
}

test_unknown_principal_source_is_refused if {
	refused(online({"source": "header", "user_type": "SystemAssociate", "subject": "bot@cust12345"}))
}

test_listed_name_only_counts_on_a_basic_credential if {
	# A user name field on another kind of credential is not a Basic login.
	inp := object.union(online({"source": "none"}), {"credential": {"scheme": "soticket", "kind": "ticket", "fingerprint": fp, "tenant": "", "username": "chatbot"}})
	refused(inp)
}

test_ticket_without_principal_is_refused if {
	inp := object.union(basic("x"), {"credential": {"scheme": "soticket", "kind": "ticket", "fingerprint": fp, "tenant": ""}})
	refused(inp)
}

test_xsrf_browser_session_is_refused if {
	inp := object.union(basic("x"), {"credential": {"scheme": "xsrf", "kind": "xsrf", "fingerprint": fp, "tenant": ""}})
	refused(inp)
}

test_empty_input_is_refused if {
	refused({})
}

test_no_bot_list_refuses_everyone_but_system_associates if {
	d1 := bots_only.decision with input as basic("chatbot") with data.resetguard_examples.bots_only as {}
	d1 == {"allow": false, "reasons": ["not_a_bot"]}
	d2 := bots_only.decision with input as online({"source": "backend", "user_type": "SystemAssociate"}) with data.resetguard_examples.bots_only as {}
	d2.allow
}

test_empty_string_in_bot_list_matches_nothing if {
	inp := object.union(online({"source": "jwt", "subject": ""}), {})
	d := bots_only.decision with input as inp with data.resetguard_examples.bots_only.bots as [""]
	not d.allow
}

test_decision_has_only_allow_and_reasons if {
	d := bots_only.decision with input as basic("chatbot")
	object.keys(d) == {"allow", "reasons"}
	e := bots_only.decision with input as basic("agent7")
	object.keys(e) == {"allow", "reasons"}
}
