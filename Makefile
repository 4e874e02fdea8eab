# k1sso — common tasks. `make demo` runs the demo world, `make test` passes
# the tests on a fresh machine (it installs the system packages it needs).

GO       ?= go
BENCH    ?= .
FUZZTIME ?= 30s

.PHONY: all demo test deps vet build bench bench-micro fuzz clean

include xcaddy.Makefile

all: build

## demo: k1dev (127.0.0.1:9000), the demo BMS (127.0.0.1:8081) and Caddy (:8080)
demo:
	$(GO) run ./cmd/demo

## deps: install the missing system packages (chromium, redis-server, wrk, ca-certificates, gcc)
deps:
	scripts/deps.sh

## test: deps, go vet and every test (browser, redis and interop tests included)
# ./interop/ first: its Hydra build (minutes when cold, cached afterwards) then
# runs alongside the other packages' tests instead of after them.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./interop/ ./...

vet:
	$(GO) vet ./...

## build: bin/caddy (Caddy with the k1sso module) and bin/k1dev
build:
	$(GO) build -o bin/caddy ./cmd/caddy
	$(GO) build -o bin/k1dev ./cmd/k1dev

## bench: the load benchmark of BENCHMARKS.md (wrk, oauth2-proxy v7.15.6; about 5 minutes, 8 from a cold build)
bench:
	scripts/bench.sh $(BENCHFLAGS)

## bench-micro: the hot-path micro-benchmarks (BENCH=regexp selects)
bench-micro:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem ./caddymodule/...

## fuzz: every Fuzz target for FUZZTIME each (default 30s)
fuzz:
	@set -e; found=0; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . ); do \
		dir=$$(dirname $$f); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			found=1; echo "fuzz: $$dir $$name"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$dir; \
		done; \
	done; \
	[ $$found = 1 ] || echo "fuzz: no Fuzz targets yet"

clean:
	rm -rf bin
