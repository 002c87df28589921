package resetguard.examples.tenant_isolation_test

import data.resetguard.examples.tenant_isolation

fp := "0123456789abcdef0123456789abcdef"

req(tenant, cred_tenant, principal) := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": tenant,
	"credential": {"scheme": "bearer", "kind": "superoffice_token", "fingerprint": fp, "tenant": cred_tenant},
	"principal": principal,
	"time": "2026-11-25T10:00:00Z",
}

onsite_basic := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": "",
	"credential": {"scheme": "basic", "kind": "basic", "fingerprint": fp, "tenant": "", "username": "chatbot"},
	"principal": {"source": "none"},
	"time": "2026-11-25T10:00:00Z",
}

none := {"source": "none"}

backend(tenant) := {"source": "backend", "associate_id": 9, "user_type": "InternalAssociate", "tenant": tenant}

decide(inp) := d if d := tenant_isolation.decision with input as inp

ok := {"allow": true, "reasons": ["same_tenant"]}

mismatch := {"allow": false, "reasons": ["tenant_mismatch"]}

suspended := {"allow": false, "reasons": ["tenant_suspended"]}

test_online_token_for_its_own_tenant if {
	decide(req("Cust12345", "Cust12345", none)) == ok
}

test_tenants_compare_case_insensitively if {
	# The path tenant is normalised; the token's is sent as the client wrote it.
	decide(req("Cust12345", "cust12345", none)) == ok
	decide(req("Cust12345", "CUST12345", backend("cust12345"))) == ok
}

test_token_for_another_tenant_is_refused if {
	decide(req("Cust12345", "Cust54321", none)) == mismatch
}

test_tenant_is_compared_whole if {
	decide(req("Cust1234", "Cust12345", none)) == mismatch
	decide(req("Cust12345", "Cust1234", none)) == mismatch
	decide(req("Cust12345", "Cust012345", none)) == mismatch
}

test_principal_of_another_tenant_is_refused if {
	decide(req("Cust12345", "Cust12345", backend("Cust54321"))) == mismatch
}

test_principal_of_the_same_tenant if {
	decide(req("Cust12345", "Cust12345", backend("Cust12345"))) == ok
}

test_principal_tenant_alone_is_checked if {
	# A ticket names no tenant; the principal's tenant still has to match.
	inp := object.union(req("Cust12345", "", backend("Cust12345")), {"credential": {"scheme": "soticket", "kind": "ticket", "fingerprint": fp, "tenant": ""}})
	decide(inp) == ok
	decide(object.union(inp, {"principal": backend("Cust9")})) == mismatch
}

test_credential_naming_no_tenant_is_fine_online if {
	decide(req("Cust12345", "", none)) == ok
	decide(object.union(req("Cust12345", "", none), {"credential": {"scheme": "xsrf", "kind": "xsrf", "fingerprint": fp}})) == ok
}

test_onsite_basic_is_fine if {
	decide(onsite_basic) == ok
}

test_onsite_refuses_a_credential_naming_a_tenant if {
	decide(req("", "Cust12345", none)) == mismatch
}

test_onsite_refuses_a_principal_naming_a_tenant if {
	decide(object.union(onsite_basic, {"principal": backend("Cust12345")})) == mismatch
}

test_onsite_principal_with_empty_tenant_is_fine if {
	decide(object.union(onsite_basic, {"principal": backend("")})) == ok
}

test_suspended_tenant_is_refused if {
	decide(req("Cust66666", "Cust66666", none)) == suspended
	decide(req("Cust70000", "", none)) == suspended
}

test_suspended_tenant_compares_case_insensitively if {
	decide(req("Cust66666", "cust66666", none)) == suspended
	d := decide(req("Cust12345", "Cust12345", none)) with data.resetguard_examples.tenant_isolation.suspended as ["CUST12345"]
	d == suspended
}

test_suspended_tenant_named_by_the_credential_only if {
	# Onsite path, token of a suspended tenant: both reasons.
	decide(req("", "Cust66666", none)) == {"allow": false, "reasons": ["tenant_mismatch", "tenant_suspended"]}
	decide(req("Cust12345", "Cust66666", none)) == {"allow": false, "reasons": ["tenant_mismatch", "tenant_suspended"]}
}

test_suspended_tenant_named_by_the_principal_only if {
	decide(req("Cust12345", "Cust12345", backend("Cust70000"))) == {"allow": false, "reasons": ["tenant_mismatch", "tenant_suspended"]}
}

test_no_suspension_list if {
	d := decide(req("Cust66666", "Cust66666", none)) with data.resetguard_examples.tenant_isolation as {}
	d == ok
}

test_empty_suspension_entry_does_not_suspend_onsite if {
	d := decide(onsite_basic) with data.resetguard_examples.tenant_isolation.suspended as [""]
	d == ok
}

test_missing_tenant_is_refused if {
	decide(object.remove(onsite_basic, ["tenant"])) == mismatch
	decide({}) == mismatch
}

test_non_string_tenants_are_refused if {
	decide(object.union(onsite_basic, {"tenant": 12345})) == mismatch
	decide(req("Cust12345", 12345, none)) == mismatch
	decide(req("Cust12345", "Cust12345", backend(null))) == mismatch
}

test_decision_shape if {
	every inp in [onsite_basic, req("", "Cust1", none), req("Cust66666", "", none), {}] {
		object.keys(decide(inp)) == {"allow", "reasons"}
	}
}
