#!/usr/bin/env bash
# bench.sh runs the load benchmark of BENCHMARKS.md: it builds Caddy with the
# k1sso module, installs oauth2-proxy v7.15.6 as a Go tool (cached in bin/)
# and wrk (apt-get, when missing), then runs bench/cmd/loadbench, which
# prints the table and the ratios. Everything listens on 127.0.0.1; the run
# takes about 5 minutes on 2 cores, plus about 4 for cold builds. Arguments
# go to loadbench, e.g.
#   scripts/bench.sh -rounds 7 -duration 10s
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
O2P_VERSION=v7.15.6
log() { echo "bench: $*" >&2; }

mkdir -p bin
# oauth2-proxy installs in the background while Caddy builds: on a fresh
# machine much of either is waiting on module downloads.
o2p_pid=""
# go install leaves the version string unset, so a stamp file records it.
if [ -x bin/oauth2-proxy ] && [ "$(cat bin/.oauth2-proxy.version 2>/dev/null)" = "$O2P_VERSION" ]; then
	log "oauth2-proxy $O2P_VERSION: cached in bin/"
else
	log "installing oauth2-proxy $O2P_VERSION from the Go module proxy"
	rm -f bin/.oauth2-proxy.version
	GOBIN="$PWD/bin" "$GO" install "github.com/oauth2-proxy/oauth2-proxy/v7@$O2P_VERSION" &
	o2p_pid=$!
fi

log "building bin/caddy and bin/loadbench"
"$GO" build -o bin/caddy ./cmd/caddy
"$GO" build -o bin/loadbench ./bench/cmd/loadbench

if ! command -v wrk >/dev/null 2>&1; then
	log "installing wrk"
	sudo=""
	if [ "$(id -u)" != 0 ]; then
		sudo=sudo
	fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq wrk
fi

if [ -n "$o2p_pid" ]; then
	if ! wait "$o2p_pid"; then
		log "installing oauth2-proxy $O2P_VERSION failed"
		exit 1
	fi
	echo "$O2P_VERSION" >bin/.oauth2-proxy.version
fi

log "builds and installs done in $SECONDS s"

# 1,000 connections need as many descriptors in wrk and in each proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

timeout 9m bin/loadbench -caddy bin/caddy -oauth2-proxy bin/oauth2-proxy "$@"
log "done in $((SECONDS / 60)) min $((SECONDS % 60)) s, builds included"
