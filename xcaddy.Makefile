# Builds Caddy with the k1sso module through xcaddy, the way operators build
# custom Caddy binaries. Included by the Makefile: `make build-xcaddy`.
#
# xcaddy runs `go mod` in a temporary folder; GOFLAGS=-mod=mod lets it write
# that folder's go.mod, and only the Go module proxy is needed (no git).
# This module is not published: it is replaced by this checkout, and
# GONOPROXY/GOVCS make Go treat it as not existing upstream (instead of
# asking the proxy or git, which fail without network or with a 403), so the
# replacement's version is used.

XCADDY_VERSION ?= v0.4.5
CADDY_VERSION  ?= v2.11.9
XCADDY         ?= bin/xcaddy
XCADDY_OUTPUT  ?= bin/caddy-xcaddy

.PHONY: build-xcaddy

## build-xcaddy: bin/caddy-xcaddy, Caddy $(CADDY_VERSION) with this module, built by xcaddy
build-xcaddy: $(XCADDY)
	GOFLAGS=-mod=mod \
	GONOPROXY=github.com/k1sso/k1sso GONOSUMDB=github.com/k1sso/k1sso \
	GOVCS="github.com/k1sso/k1sso:off,public:git|hg" \
		$(XCADDY) build $(CADDY_VERSION) \
		--with github.com/k1sso/k1sso/caddymodule \
		--replace github.com/k1sso/k1sso=$(CURDIR) \
		--output $(XCADDY_OUTPUT)

$(XCADDY):
	GOBIN=$(abspath $(dir $(XCADDY))) $(GO) install github.com/caddyserver/xcaddy/cmd/xcaddy@$(XCADDY_VERSION)
