# METADATA
# title: Hand-offs only in business hours
# description: |
#   A bot may hand a chat to human agents only while agents are at work:
#   Monday to Friday, from 08:00 up to (not including) 18:00, local time in
#   the IANA time zone data.resetguard_examples.business_hours.timezone
#   (e.g. "Europe/Oslo", so daylight saving time is followed). The time is
#   input.time, when the request arrived (RFC 3339). Outside those hours:
#   "outside_business_hours". Local dates listed in
#   data.resetguard_examples.business_hours.holidays ("YYYY-MM-DD") are
#   refused with "holiday". An unreadable input.time is refused with
#   "time_invalid", a missing time zone with "timezone_unset".
#   Query: data.resetguard.examples.business_hours.decision
package resetguard.examples.business_hours

default decision := {"allow": false, "reasons": ["outside_business_hours"]}

decision := {"allow": true, "reasons": ["business_hours"]} if {
	count(deny) == 0
	open
}

decision := {"allow": false, "reasons": sort([r | some r in deny])} if count(deny) > 0

# Opening hours, local time: [opens_at, closes_at).
opens_at := 8

closes_at := 18

workdays := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}

deny contains "time_invalid" if not ns

deny contains "timezone_unset" if not tz

deny contains "outside_business_hours" if {
	is_array(local)
	not open
}

deny contains "holiday" if local_date in holidays

# input.time in nanoseconds since the epoch. The shape is checked first so
# that a malformed time is refused, not an evaluation error.
ns := time.parse_rfc3339_ns(input.time) if {
	is_string(input.time)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$`, input.time)
}

tz := t if {
	t := data.resetguard_examples.business_hours.timezone
	is_string(t)
	t != ""
}

# The request's time in the business's time zone, as the time.* built-ins
# take it.
local := [ns, tz]

open if {
	time.weekday(local) in workdays
	[hour, _, _] := time.clock(local)
	hour >= opens_at
	hour < closes_at
}

local_date := sprintf("%04d-%02d-%02d", time.date(local))

holidays := {d | some d in object.get(data.resetguard_examples.business_hours, "holidays", [])}
