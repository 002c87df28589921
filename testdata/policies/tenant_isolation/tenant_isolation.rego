# METADATA
# title: Tenant isolation
# description: |
#   A reset stays inside one tenant. The tenant named by the path
#   (input.tenant, "" onsite) must equal, case-insensitively, the tenant of
#   the credential (credential.tenant, e.g. of an 8A: token) when it names
#   one, and the tenant of the principal (principal.tenant) when it names
#   one. Onsite (input.tenant "") therefore admits no credential or
#   principal that names a tenant. Otherwise: "tenant_mismatch".
#   A tenant listed in data.resetguard_examples.tenant_isolation.suspended
#   (case-insensitively) is refused with "tenant_suspended", whichever of
#   the three names it.
#   Query: data.resetguard.examples.tenant_isolation.decision
package resetguard.examples.tenant_isolation

default decision := {"allow": false, "reasons": ["tenant_mismatch"]}

decision := {"allow": true, "reasons": ["same_tenant"]} if {
	count(deny) == 0
}

decision := {"allow": false, "reasons": sort([r | some r in deny])} if count(deny) > 0

# The tenants the credential and the principal name, lower-cased; an empty
# or absent tenant names none.
claimed contains lower(t) if {
	t := input.credential.tenant
	is_string(t)
	t != ""
}

claimed contains lower(t) if {
	t := input.principal.tenant
	is_string(t)
	t != ""
}

# A tenant that is not a string can be compared with nothing.
claimed contains "(invalid)" if {
	some t in [object.get(input, ["credential", "tenant"], ""), object.get(input, ["principal", "tenant"], "")]
	not is_string(t)
}

# The tenant named by the path, lower-cased ("" onsite).
path_tenant := lower(input.tenant) if is_string(input.tenant)

deny contains "tenant_mismatch" if {
	some t in claimed
	t != path_tenant
}

deny contains "tenant_mismatch" if not path_tenant

deny contains "tenant_suspended" if {
	some t in named
	t in suspended
}

# Every tenant the request names.
named contains t if some t in claimed

named contains path_tenant

suspended := {lower(t) |
	some t in data.resetguard_examples.tenant_isolation.suspended
	is_string(t)
	t != ""
}
