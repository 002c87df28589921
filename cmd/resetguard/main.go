// Command resetguard is a Caddy binary with the standard modules and the
// reset_guard handler: the gateway xcaddy would build with
// `xcaddy build --with github.com/resetguard/caddy-resetguard`.
package main

import (
	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/resetguard/caddy-resetguard"
)

func main() {
	// Help and usage texts name this binary, not "caddy".
	caddy.CustomBinaryName = "resetguard"
	caddycmd.Main()
}
