# time.now_ns is allowed: a decision may depend on the time.
package strict.timecheck

decision := {"allow": true, "reasons": ["after_2020"]} if time.now_ns() > time.parse_rfc3339_ns("2020-01-01T00:00:00Z")
