#!/usr/bin/env bash
# deps.sh installs the system packages the tests need, and only those that are
# missing: chromium (browser tests through chromedp), redis-server (the
# multi-instance store), wrk (benchmarks), ca-certificates, and a C compiler
# (the interop tests build Ory Hydra with SQLite, which needs cgo).
#
# Idempotent: when everything is present it changes nothing. Uses apt-get
# (after apt-get update); runs as root, or through sudo when available.
set -euo pipefail

log() { echo "deps: $*"; }

# installed PKG: whether the Debian package PKG is installed.
installed() {
	command -v dpkg-query >/dev/null 2>&1 &&
		[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# have_any CMD...: whether one of the commands is on PATH.
have_any() {
	local c
	for c in "$@"; do
		if command -v "$c" >/dev/null 2>&1; then
			return 0
		fi
	done
	return 1
}

missing=()
# Any Chrome that chromedp can find will do.
if installed chromium || have_any chromium chromium-browser google-chrome google-chrome-stable headless-shell; then
	log "chromium: present"
else
	missing+=(chromium)
fi
# redis-cli (redis-tools) creates the test cluster.
if { installed redis-server || have_any redis-server; } && have_any redis-cli; then
	log "redis-server, redis-cli: present"
else
	missing+=(redis-server redis-tools)
fi
if installed wrk || have_any wrk; then
	log "wrk: present"
else
	missing+=(wrk)
fi
if have_any gcc cc && { installed libc6-dev || [ -e /usr/include/stdio.h ]; }; then
	log "C compiler: present"
else
	missing+=(gcc libc6-dev)
fi
if installed ca-certificates || [ -s /etc/ssl/certs/ca-certificates.crt ]; then
	log "ca-certificates: present"
else
	missing+=(ca-certificates)
fi

if [ ${#missing[@]} -eq 0 ]; then
	log "nothing to install"
	exit 0
fi

log "missing: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
	log "apt-get not found; install these yourself: ${missing[*]}" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		log "not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
log "running: ${sudo[*]:+${sudo[*]} }apt-get update"
"${sudo[@]}" apt-get update -q
log "running: ${sudo[*]:+${sudo[*]} }apt-get install -y --no-install-recommends ${missing[*]}"
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
log "installed: ${missing[*]}"
