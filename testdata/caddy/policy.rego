# Test policy for the integration suite: any authenticated caller may hand
# off, except the user "mallory" and session 666; session 13 makes the
# policy fail to evaluate (conflicting values), to test fail-closed.
package resetguard.test

default decision := {"allow": false, "reasons": ["denied_by_default"]}

decision := {"allow": true, "reasons": ["ok"], "headers": {"X-ResetGuard-Decision": "allow"}} if {
	not refused
	not session_closed
	input.session_id != 13
}

decision := {"allow": false, "reasons": ["mallory_refused"], "status": 403, "headers": {"X-Denied-By": "policy"}} if {
	input.credential.username == "mallory"
}

decision := {"allow": false, "reasons": ["session_locked"], "status": 423} if input.session_id == 666

refused if input.credential.username == "mallory"

# With a session lookup configured, input.session is the current entity.
session_closed if input.session.Status in {"Closed", "Finished", "Deleted"}

decision := {"allow": false, "reasons": ["session_closed"], "status": 409} if session_closed

refused if input.session_id == 666

decision := true if input.session_id == 13

decision := false if input.session_id == 13
