package resetguard

// auditFileJSON is an audit file inside every bound, with fields added.
func auditFileJSON(fields string) string {
	return `{"audit": {"file": {"path": "/var/lib/rg/audit.log"` + fields + `}}}`
}

// auditFileCaddyfile is auditFileJSON in the Caddyfile.
func auditFileCaddyfile(option string) string {
	return "audit {\nfile /var/lib/rg/audit.log {\n" + option + "\n}\n}"
}

var auditBounds = []boundCase{
	{name: "file inside every bound", json: auditFileJSON(`, "fsync": "interval", "fsync_interval": "1ns", "max_size": 1`),
		caddyfile: auditFileCaddyfile("fsync interval 1ns\nmax_size 1")},
	{name: "fsync never", json: auditFileJSON(`, "fsync": "never"`), caddyfile: auditFileCaddyfile("fsync never")},
	{name: "fsync mode unknown", json: auditFileJSON(`, "fsync": "sometimes"`), caddyfile: auditFileCaddyfile("fsync sometimes"),
		want: `reset_guard: audit.file.fsync "sometimes": want always, interval or never`},
	{name: "fsync interval negative", json: auditFileJSON(`, "fsync": "interval", "fsync_interval": "-1s"`),
		caddyfile: auditFileCaddyfile("fsync interval -1s"),
		want:      "reset_guard: audit.file.fsync_interval -1s: want a positive duration"},
	{name: "max size negative", json: auditFileJSON(`, "max_size": -1`), caddyfile: auditFileCaddyfile("max_size -1"),
		want: "reset_guard: audit.file.max_size -1B: want a positive size"},
	{name: "write timeout at its ceiling", json: auditFileJSON(`, "write_timeout": "1m"`), caddyfile: auditFileCaddyfile("write_timeout 1m")},
	{name: "write timeout past its ceiling", json: auditFileJSON(`, "write_timeout": "2m"`), caddyfile: auditFileCaddyfile("write_timeout 2m"),
		want: "reset_guard: audit.file.write_timeout 2m: want a duration in (0, 1m]"},
	{name: "write timeout negative", json: auditFileJSON(`, "write_timeout": "-1s"`), caddyfile: auditFileCaddyfile("write_timeout -1s"),
		want: "reset_guard: audit.file.write_timeout -1s: want a duration in (0, 1m]"},
	{name: "file without path", json: `{"audit": {"file": {"path": ""}}}`, caddyfile: "audit {\nfile \"\"\n}",
		want: "reset_guard: audit.file.path: required"},
	{name: "customer field unknown", json: `{"audit": {"customer_fields": {"CustomerShoeSize": "clear"}}}`,
		caddyfile: "audit {\ncustomer_field CustomerShoeSize clear\n}",
		want:      "reset_guard: audit.customer_fields.CustomerShoeSize: want one of CustomerAlias, CustomerCompanyName, CustomerEmail, CustomerHost, CustomerName, CustomerPhone"},
	{name: "customer treatment unknown", json: `{"audit": {"customer_fields": {"CustomerEmail": "rot13"}}}`,
		caddyfile: "audit {\ncustomer_field CustomerEmail rot13\n}",
		want:      `reset_guard: audit.customer_fields.CustomerEmail "rot13": want hash or clear`},
	{name: "customer hash without key", json: `{"audit": {"customer_fields": {"CustomerEmail": "hash"}}}`,
		caddyfile: "audit {\ncustomer_field CustomerEmail hash\n}",
		want:      "reset_guard: audit.customer_key: required to hash CustomerEmail"},
	{name: "customer fields in any case", json: `{"audit": {"customer_fields": {"customeremail": "hash", "CUSTOMERNAME": "clear"}, "customer_key": "k"}}`,
		caddyfile: "audit {\ncustomer_field customeremail hash\ncustomer_field CUSTOMERNAME clear\ncustomer_key k\n}"},
}

// combinedBounds: every problem of a config is reported at once, in the
// order of the config's fields.
var combinedBounds = []boundCase{
	{name: "two fields out of range", json: `{"policy": {"timeout": "2m"}, "max_request_body": -1, "audit": {"file": {"path": "a.log", "fsync": "often"}}}`,
		caddyfile: "policy_timeout 2m\nmax_request_body -1\naudit {\nfile a.log {\nfsync often\n}\n}",
		want: "reset_guard: policy.timeout 2m: want a duration in (0, 1m]\n" +
			`audit.file.fsync "often": want always, interval or never` + "\nmax_request_body -1B: want a size in [1B, 1GiB]"},
}
