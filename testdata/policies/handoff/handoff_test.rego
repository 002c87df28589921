package resetguard.handoff_test

import data.resetguard.handoff

base := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": "",
	"credential": {"scheme": "basic", "kind": "basic", "username": "chatbot", "tenant": ""},
	"principal": {"source": "none"},
}

test_listed_onsite_bot_may_hand_off if {
	d := handoff.decision with input as base
	d.allow
	d.reasons == ["listed_bot"]
	d.headers["X-ResetGuard-Bot"] == "onsite-chatbot"
}

test_unlisted_user_is_refused if {
	d := handoff.decision with input as object.union(base, {"credential": {"scheme": "basic", "kind": "basic", "username": "agent7", "tenant": ""}})
	not d.allow
	d.reasons == ["caller_not_a_listed_bot"]
}

test_bot_outside_its_tenant_is_refused if {
	d := handoff.decision with input as object.union(base, {"tenant": "Cust99999"})
	not d.allow
}

test_tenant_bot_in_its_tenant_may_hand_off if {
	inp := object.union(base, {
		"tenant": "cust12345",
		"credential": {"scheme": "basic", "kind": "basic", "username": "cust12345-bot", "tenant": ""},
	})
	d := handoff.decision with input as inp
	d.allow
	d.headers["X-ResetGuard-Bot"] == "cust12345-bot"
}

test_principal_subject_identifies_a_bot if {
	inp := object.union(base, {
		"tenant": "Cust12345",
		"credential": {"scheme": "bearer", "kind": "jwt", "tenant": ""},
		"principal": {"source": "jwt", "subject": "bot@cust12345"},
	})
	d := handoff.decision with input as inp
	d.allow
}

test_subject_ignored_without_verified_principal if {
	inp := object.union(base, {
		"tenant": "Cust12345",
		"credential": {"scheme": "bearer", "kind": "superoffice_token", "tenant": "Cust12345"},
		"principal": {"source": "none", "subject": "bot@cust12345"},
	})
	d := handoff.decision with input as inp
	not d.allow
}

test_token_for_other_tenant_is_refused_even_for_a_bot if {
	inp := object.union(base, {"credential": {"scheme": "basic", "kind": "basic", "username": "chatbot", "tenant": "Cust1"}})
	d := handoff.decision with input as inp
	not d.allow
	d.reasons == ["tenant_mismatch"]
}

test_protected_session_is_never_reset if {
	d := handoff.decision with input as object.union(base, {"session_id": 1})
	not d.allow
	d.reasons == ["session_protected"]
}

test_reasons_are_all_listed if {
	inp := object.union(base, {"session_id": 1, "credential": {"scheme": "basic", "kind": "basic", "username": "chatbot", "tenant": "Cust1"}})
	d := handoff.decision with input as inp
	d.reasons == ["session_protected", "tenant_mismatch"]
}
