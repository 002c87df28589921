# Data of the business_hours example, at
# data.resetguard_examples.business_hours: the IANA time zone the hours are
# kept in and the local dates ("YYYY-MM-DD") that are holidays.
#
# A Rego module rather than a data.json, so that it lands at the same path
# whether this directory or testdata/policies is loaded (see
# ../README.md, "Layout").
package resetguard_examples.business_hours

timezone := "Europe/Oslo"

holidays := [
	"2026-04-02", "2026-04-03", "2026-04-06", "2026-05-01", "2026-05-14",
	"2026-05-25", "2026-12-24", "2026-12-25", "2026-12-26", "2026-12-31",
	"2027-01-01",
]
