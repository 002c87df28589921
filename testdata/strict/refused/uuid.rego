package strict.refused

decision := {"allow": true, "reasons": [uuid.rfc4122("id")]}
