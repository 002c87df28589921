# A JSON Schema with a remote $ref: without allow_network_builtins the
# schema loader may not fetch it, which is an evaluation error (503), not
# an undefined match.
package strict.schema_ref

schema := {"$ref": "http://127.0.0.1:9/schema.json"}

decision := {"allow": true} if {
	[ok, _] := json.match_schema(input, schema)
	not ok
}
