# Mocking a refused built-in is refusing it too: a mock in a policy file
# is a test's business.
package strict.refused

fake(_) := {"status_code": 200}

ok if http.send({"method": "GET", "url": "http://127.0.0.1:9/"}).status_code == 200

decision := {"allow": true} if ok with http.send as fake
