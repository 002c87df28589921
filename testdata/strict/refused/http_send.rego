package strict.refused

decision := {"allow": true} if http.send({"method": "GET", "url": "http://127.0.0.1:9/"}).status_code == 200
