# print() output goes to the Caddy logger at debug level; its arguments
# are evaluated the same way whether or not debug logging is on, so a
# built-in error inside one is an evaluation error everywhere.
package strict.print

decision := {"allow": true, "reasons": ["printed"]} if {
	print("deciding for session", input.session_id, "as", input.credential.username)
}

erroring := {"allow": true} if {
	print("method as a number:", to_number(input.request.method))
}
