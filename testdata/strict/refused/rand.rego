package strict.refused

decision := {"allow": true} if rand.intn("coin", 2) == 0
