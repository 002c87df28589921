package resetguard.examples.business_hours_test

import data.resetguard.examples.business_hours

fp := "0123456789abcdef0123456789abcdef"

at(t) := {
	"action": "chat_session.reset",
	"route": "rest",
	"session_id": 427,
	"tenant": "Cust12345",
	"credential": {"scheme": "bearer", "kind": "superoffice_token", "fingerprint": fp, "tenant": "Cust12345"},
	"principal": {"source": "none"},
	"time": t,
}

decide(t) := d if d := business_hours.decision with input as at(t)

allowed(t) if decide(t) == {"allow": true, "reasons": ["business_hours"]}

closed(t) if decide(t) == {"allow": false, "reasons": ["outside_business_hours"]}

# Winter (CET, UTC+1): 08:00 local is 07:00Z, 18:00 local is 17:00Z.

test_weekday_during_hours_is_allowed if {
	allowed("2026-11-25T10:00:00Z") # Wednesday 11:00 CET
}

test_opening_edge_winter if {
	closed("2026-11-25T06:59:59Z") # 07:59:59 CET
	closed("2026-11-25T06:59:59.999999999Z")
	allowed("2026-11-25T07:00:00Z") # 08:00:00 CET
	allowed("2026-11-25T07:00:00.000000001Z")
}

test_closing_edge_winter if {
	allowed("2026-11-25T16:59:59Z") # 17:59:59 CET
	allowed("2026-11-25T16:59:59.999999999Z")
	closed("2026-11-25T17:00:00Z") # 18:00:00 CET
	closed("2026-11-25T17:00:01Z")
}

test_every_workday_is_open if {
	every t in [
		"2026-11-23T09:00:00Z", # Monday
		"2026-11-24T09:00:00Z", # Tuesday
		"2026-11-25T09:00:00Z", # Wednesday
		"2026-11-26T09:00:00Z", # Thursday
		"2026-11-27T09:00:00Z", # Friday
	] {
		allowed(t)
	}
}

test_weekend_is_closed if {
	closed("2026-11-28T10:00:00Z") # Saturday 11:00
	closed("2026-11-29T10:00:00Z") # Sunday 11:00
}

test_night_is_closed if {
	closed("2026-11-25T00:00:00Z")
	closed("2026-11-25T03:00:00Z")
	closed("2026-11-25T22:59:59Z")
}

test_weekday_is_the_local_one if {
	# Friday 23:30Z is Saturday 00:30 in Oslo.
	closed("2026-11-27T23:30:00Z")
	# Sunday 23:30Z is Monday 00:30 in Oslo: a workday, but before opening.
	closed("2026-11-29T23:30:00Z")
}

# Spring forward: Sunday 29 March 2026 02:00 CET becomes 03:00 CEST.

test_opening_edge_before_and_after_spring_dst if {
	# Friday 27 March, CET (UTC+1).
	closed("2026-03-27T06:59:59Z") # 07:59:59 CET
	allowed("2026-03-27T07:00:00Z") # 08:00 CET
	# Monday 30 March, CEST (UTC+2).
	closed("2026-03-30T05:59:59Z") # 07:59:59 CEST
	allowed("2026-03-30T06:00:00Z") # 08:00 CEST
}

test_same_utc_time_differs_across_spring_dst if {
	allowed("2026-03-27T16:30:00Z") # Friday 17:30 CET
	closed("2026-03-30T16:30:00Z") # Monday 18:30 CEST
	closed("2026-03-27T06:30:00Z") # Friday 07:30 CET
	allowed("2026-03-30T06:30:00Z") # Monday 08:30 CEST
}

test_closing_edge_in_summer if {
	allowed("2026-03-30T15:59:59Z") # 17:59:59 CEST
	closed("2026-03-30T16:00:00Z") # 18:00 CEST
}

test_dst_switch_day_is_a_sunday_and_closed if {
	closed("2026-03-29T01:30:00Z") # 03:30 CEST, just after the switch
	closed("2026-03-29T10:00:00Z")
	closed("2026-10-25T10:00:00Z")
}

# Fall back: Sunday 25 October 2026 03:00 CEST becomes 02:00 CET.

test_opening_edge_before_and_after_autumn_dst if {
	# Friday 23 October, CEST (UTC+2).
	closed("2026-10-23T05:59:59Z") # 07:59:59 CEST
	allowed("2026-10-23T06:00:00Z") # 08:00 CEST
	# Monday 26 October, CET (UTC+1).
	closed("2026-10-26T06:30:00Z") # 07:30 CET
	closed("2026-10-26T06:59:59Z") # 07:59:59 CET
	allowed("2026-10-26T07:00:00Z") # 08:00 CET
}

test_closing_edge_before_and_after_autumn_dst if {
	allowed("2026-10-23T15:59:59Z") # Friday 17:59:59 CEST
	closed("2026-10-23T16:00:00Z") # Friday 18:00 CEST
	allowed("2026-10-26T16:59:59Z") # Monday 17:59:59 CET
	closed("2026-10-26T17:00:00Z") # Monday 18:00 CET
}

test_offsets_in_input_time_are_honoured if {
	allowed("2026-11-25T08:00:00+01:00")
	closed("2026-11-25T07:59:59+01:00")
	allowed("2026-11-25T02:00:00-05:00") # 07:00Z, 08:00 CET
}

test_other_time_zone if {
	# Sunday 20:00Z is Monday 09:00 in Auckland (NZDT, UTC+13).
	d1 := decide("2026-11-29T20:00:00Z") with data.resetguard_examples.business_hours.timezone as "Pacific/Auckland"
	d1 == {"allow": true, "reasons": ["business_hours"]}
	# Friday 20:00Z is Saturday 09:00 there.
	d2 := decide("2026-11-27T20:00:00Z") with data.resetguard_examples.business_hours.timezone as "Pacific/Auckland"
	d2 == {"allow": false, "reasons": ["outside_business_hours"]}
}

test_utc_time_zone if {
	d1 := decide("2026-11-25T08:00:00Z") with data.resetguard_examples.business_hours.timezone as "UTC"
	d1.allow
	d2 := decide("2026-11-25T07:59:59Z") with data.resetguard_examples.business_hours.timezone as "UTC"
	not d2.allow
}

test_holiday_during_hours_is_refused if {
	decide("2026-12-24T10:00:00Z") == {"allow": false, "reasons": ["holiday"]} # Thursday
	decide("2026-05-01T10:00:00Z") == {"allow": false, "reasons": ["holiday"]} # Friday
}

test_holiday_outside_hours_gives_both_reasons if {
	decide("2026-12-24T20:00:00Z") == {"allow": false, "reasons": ["holiday", "outside_business_hours"]}
	decide("2026-12-26T10:00:00Z") == {"allow": false, "reasons": ["holiday", "outside_business_hours"]} # Saturday
}

test_holiday_is_the_local_date if {
	# 23 December 23:30Z is 24 December 00:30 in Oslo (a holiday), and
	# 22 December 23:30Z is 23 December 00:30 (not one).
	decide("2026-12-23T23:30:00Z") == {"allow": false, "reasons": ["holiday", "outside_business_hours"]}
	closed("2026-12-22T23:30:00Z")
	# The working day before a holiday is open.
	allowed("2026-12-23T16:59:59Z")
}

test_holiday_list_from_data if {
	d := decide("2026-11-25T10:00:00Z") with data.resetguard_examples.business_hours.holidays as ["2026-11-25"]
	d == {"allow": false, "reasons": ["holiday"]}
	e := decide("2026-12-24T10:00:00Z") with data.resetguard_examples.business_hours.holidays as []
	e.allow
}

test_no_holiday_list if {
	d := decide("2026-12-24T10:00:00Z") with data.resetguard_examples.business_hours as {"timezone": "Europe/Oslo"}
	d.allow
}

test_missing_time_zone_is_refused if {
	d := decide("2026-11-25T10:00:00Z") with data.resetguard_examples.business_hours as {"holidays": []}
	d == {"allow": false, "reasons": ["timezone_unset"]}
	e := decide("2026-11-25T10:00:00Z") with data.resetguard_examples.business_hours.timezone as ""
	e == {"allow": false, "reasons": ["timezone_unset"]}
}

test_malformed_time_is_refused if {
	every t in ["", "yesterday", "2026-11-25", "2026-11-25 10:00:00Z", "2026-11-25T10:00:00", "1795600800"] {
		decide(t) == {"allow": false, "reasons": ["time_invalid"]}
	}
}

test_missing_or_non_string_time_is_refused if {
	d := business_hours.decision with input as object.remove(at(""), ["time"])
	d == {"allow": false, "reasons": ["time_invalid"]}
	decide(1795600800) == {"allow": false, "reasons": ["time_invalid"]}
}

test_decision_shape if {
	every t in ["2026-11-25T10:00:00Z", "2026-11-25T20:00:00Z", "2026-12-24T10:00:00Z", "bad"] {
		object.keys(decide(t)) == {"allow", "reasons"}
	}
}
