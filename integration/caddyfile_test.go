package integration_test

import (
	"strings"
	"testing"
	"text/template"
)

// The sites of the shared gateway, one per configuration a suite needs.
// caddytest fixes the admin port; the site addresses stand again as
// literals in gatewayTemplate, which reads better as a Caddyfile than one
// built from these: keep the two in step.
const (
	adminURL   = "http://localhost:2999"
	gatewayURL = "http://localhost:9080" // the guard as an operator would run it
	// gatewayAddr is gatewayURL for the raw-connection suites.
	gatewayAddr = "localhost:9080"
	dryRunURL   = "http://localhost:9081"
	deadURL     = "http://localhost:9082" // upstream: a port nobody listens on
	// Two gateway instances sharing one bundle service.
	bundleURL1 = "http://localhost:9083"
	bundleURL2 = "http://localhost:9084"
	// A gateway that reads the session before deciding.
	lookupURL = "http://localhost:9085"
	// A gateway whose policy file the reload test rewrites.
	reloadURL  = "http://localhost:9086"
	jwtURL     = "http://localhost:9087" // JWTs verified against the stand-in JWKS
	lookupPURL = "http://localhost:9088" // principals asked of the stand-in backend
	durableURL = "http://localhost:9089" // audit file with fsync interval
	rotateURL  = "http://localhost:9090" // audit file rotated at 32 KiB
	// A gateway that copies the {http.reset_guard.*} placeholders into
	// response headers.
	placeholdersURL = "http://localhost:9091"
	// A gateway whose refusals are written by the operator's
	// handle_errors route.
	handleErrorsURL = "http://localhost:9092"
	// Sites whose proxy sits inside a routing block, with reset_guard at
	// the top level: the directive order must put the guard first.
	handleURL     = "http://localhost:9093" // handle /api/* { reverse_proxy }
	handlePathURL = "http://localhost:9094" // handle_path /gw/* { reverse_proxy }
	routeURL      = "http://localhost:9095" // route { reverse_proxy }
	nestedURL     = "http://localhost:9096" // handle { handle /api/* { reverse_proxy } }
	// A gateway sending OPA decision logs to the loopback collector.
	decisionLogsURL = "http://localhost:9097"
)

// siteParams are the paths and addresses only known once the stand-ins
// run and the work directory exists.
type siteParams struct {
	AuditLog          string // where the Caddy logger writes every record
	PolicyDir         string // testdata/caddy: the suites' test policy
	IdentityPolicyDir string
	ReloadDir         string // the policy directory of reloadURL
	DurableLog        string
	RotateLog         string
	Upstream          string // the stand-in backend, host:port
	BackendURL        string // the same, as a URL for lookups
	Dead              string // host:port with nothing listening
	Bundles           string // the bundle service's URL
	JWKS              string
	Issuer, Audience  string
	DecisionLogs      string // the decision-log collector's URL
}

// gatewayTemplate is the Caddyfile of the shared gateway. "policy" is the
// test policy as most sites load it.
const gatewayTemplate = `{{define "policy"}}policy {{.PolicyDir}} {
			query data.resetguard.test.decision
			timeout 2s
		}{{end}}{{define "remote"}}reset_guard {
		policy {
			remote {{.Bundles}} bundles/resetguard.tar.gz {
				polling 1s 1s
				wait 10s
			}
			query data.resetguard.decision
			timeout 2s
		}
	}{{end}}{
	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 1ns
	auto_https off
	log resetguard_audit {
		output file {{.AuditLog}}
		format json
		include http.handlers.reset_guard.audit
	}
}
http://localhost:9080 {
	reset_guard {
		{{template "policy" .}}
		fingerprint_key integration-test-key
		request_body_timeout 1s
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9097 {
	reset_guard {
		policy {{.PolicyDir}} {
			query data.resetguard.test.decision
			timeout 2s
			decision_logs {{.DecisionLogs}} {
				min_delay 1s
				max_delay 1s
			}
		}
		fingerprint_key integration-test-key
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9081 {
	reset_guard {
		{{template "policy" .}}
		fingerprint_key integration-test-key
		dry_run
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9082 {
	reset_guard {
		{{template "policy" .}}
		fingerprint_key integration-test-key
	}
	reverse_proxy {{.Dead}}
}
http://localhost:9083 {
	{{template "remote" .}}
	reverse_proxy {{.Upstream}}
}
http://localhost:9084 {
	{{template "remote" .}}
	reverse_proxy {{.Upstream}}
}
http://localhost:9085 {
	reset_guard {
		{{template "policy" .}}
		fingerprint_key integration-test-key
		session_lookup {{.BackendURL}} {
			timeout 500ms
		}
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9086 {
	reset_guard {
		policy {{.ReloadDir}}
		query data.resetguard.decision
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9091 {
	header {
		>X-RG-Decision "{http.reset_guard.decision}"
		>X-RG-Session "{http.reset_guard.session_id}"
		>X-RG-Principal "{http.reset_guard.principal}"
		>X-RG-Reasons "{http.reset_guard.reasons}"
		>X-RG-Event "{http.reset_guard.event_id}"
	}
	reset_guard {
		{{template "policy" .}}
		fingerprint_key integration-test-key
		name placeholders
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9092 {
	reset_guard {
		{{template "policy" .}}
		fingerprint_key integration-test-key
		name restyled
		errors handle_errors
	}
	reverse_proxy {{.Upstream}}
	handle_errors {
		header Content-Type "text/plain; charset=utf-8"
		respond "refused {http.error.status_code} {http.reset_guard.error_type} reasons={http.reset_guard.reasons} id={http.reset_guard.request_id}"
	}
}
http://localhost:9093 {
	reset_guard {
		{{template "policy" .}}
	}
	handle /api/* {
		reverse_proxy {{.Upstream}}
	}
	respond "not proxied" 404
}
http://localhost:9094 {
	handle_path /gw/* {
		reverse_proxy {{.Upstream}}
	}
	reset_guard {
		{{template "policy" .}}
	}
}
http://localhost:9095 {
	route {
		reverse_proxy {{.Upstream}}
	}
	reset_guard {
		{{template "policy" .}}
	}
}
http://localhost:9096 {
	handle {
		handle /api/* {
			reverse_proxy {{.Upstream}}
		}
	}
	reset_guard {
		{{template "policy" .}}
	}
}
http://localhost:9087 {
	reset_guard {
		policy {{.IdentityPolicyDir}} {
			query data.resetguard.identity.decision
		}
		identity {
			jwt {
				issuer {{.Issuer}}
				audience {{.Audience}}
				jwks_url {{.JWKS}}
				min_refresh 1s
			}
		}
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9088 {
	reset_guard {
		policy {{.IdentityPolicyDir}} {
			query data.resetguard.identity.decision
		}
		identity {
			principal_lookup {{.BackendURL}} {
				timeout 1s
				ttl 1m
			}
		}
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9089 {
	reset_guard {
		{{template "policy" .}}
		audit {
			file {{.DurableLog}} {
				fsync interval 50ms
			}
		}
	}
	reverse_proxy {{.Upstream}}
}
http://localhost:9090 {
	reset_guard {
		{{template "policy" .}}
		audit {
			file {{.RotateLog}} {
				fsync never
				max_size 32KiB
			}
		}
	}
	reverse_proxy {{.Upstream}}
}
`

// gatewayConfig renders the Caddyfile for p.
func gatewayConfig(t *testing.T, p siteParams) string {
	t.Helper()
	tmpl, err := template.New("Caddyfile").Option("missingkey=error").Parse(gatewayTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
