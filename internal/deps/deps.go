package deps
import (
	_ "github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "golang.org/x/oauth2"
	_ "github.com/gorilla/securecookie"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "go.uber.org/zap"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/zitadel/oidc/v3/pkg/op"
	_ "github.com/pquerna/otp/totp"
	_ "github.com/chromedp/chromedp"
	_ "github.com/go-jose/go-jose/v4"
)
