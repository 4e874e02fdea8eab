// Command caddy is a Caddy build that includes the k1sso module, the
// standard custom-build main of Caddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/k1sso/k1sso/caddymodule"
)

func main() {
	caddycmd.Main()
}
