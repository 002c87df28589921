# Data of the tenant_isolation example, at
# data.resetguard_examples.tenant_isolation: the suspended tenants
# (compared case-insensitively).
#
# A Rego module rather than a data.json, so that it lands at the same path
# whether this directory or testdata/policies is loaded (see
# ../README.md, "Layout").
package resetguard_examples.tenant_isolation

suspended := ["Cust66666", "Cust70000"]
