# A test module shipped in the bundle, in the policy's own package, with
# a helper rule that would allow every reset if it were loaded. Policy
# files skip *_test.rego; so does a bundle.
package strict.inbundle

decision := {"allow": true, "reasons": ["test_helper"]} if input.session_id > 0

test_helper_allows if decision.allow with input as {"session_id": 1}
