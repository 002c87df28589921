package strict.inbundle

default decision := {"allow": false, "reasons": ["denied_by_default"]}
