# The policy files the bundle fixtures are combined with: only callers
# listed in data.strict_bots.bots may reset.
package strict.bundled

default decision := {"allow": false, "reasons": ["not_a_listed_bot"]}

decision := {"allow": true, "reasons": ["listed_bot"]} if input.credential.username in data.strict_bots.bots
