# http.send to a service named in data (data.strict_network.url, written
# by the test). Refused at load unless policy.allow_network_builtins.
package strict.network

decision := {"allow": true, "reasons": ["service_says_yes"]} if {
	resp := http.send({"method": "GET", "url": data.strict_network.url})
	resp.status_code == 200
}

default decision := {"allow": false, "reasons": ["service_says_no"]}
