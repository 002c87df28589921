package strict.refused

decision := {"allow": true} if count(net.lookup_ip_addr("example.com")) > 0
