# Decision documents of every wrong shape, one rule each; the tests point
# the query at one rule at a time. None of them may forward: only true or
# a well-formed {"allow": true, ...} does.
package strict.shapes

allow_true := true

allow_object := {"allow": true, "reasons": ["ok"]}

allow_string := "true"

allow_number := 1

allow_null := null

object_allow_string := {"allow": "true"}

object_allow_number := {"allow": 1}

object_allow_nested := {"allow": {"allow": true}}

object_allow_list := {"allow": [true]}

object_capitalised := {"Allow": true}

object_extra_key := {"allow": true, "reason": "typo of reasons"}

object_non_string_key := {"allow": true, 1: "x"}

object_status_on_allow := {"allow": true, "status": 200}

object_bad_header := {"allow": true, "headers": {"X-A": "1\r\nX-Injected: 2"}}

object_reasons_string := {"allow": true, "reasons": "ok"}

list_of_true := [true]

# Partial sets: a set is handed over as a list, never as a boolean.
set_of_true contains true

set_of_objects contains {"allow": true}

empty_set contains x if {
	some x in []
}

# A partial object: the keys the rules produce form the decision, and
# here one of them is not part of the contract.
partial_object[k] := v if {
	some k, v in {"allow": true, "why": "extra"}
}

# Sets of strings are fine where the contract asks for strings.
set_reasons := {"allow": true, "reasons": {"b", "a"}}

# Undefined: no rule produces a value.
undefined_rule if false
