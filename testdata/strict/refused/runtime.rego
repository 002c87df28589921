package strict.refused

decision := {"allow": true} if not opa.runtime().env.RESETGUARD_BLOCK
