#!/usr/bin/env bash
# Runs each fuzz target of caddymodule for a bounded time (FUZZTIME, default
# 20s). A crash fails the script; go test writes the input to
# caddymodule/testdata/fuzz/<target>/ — commit it with the fix, so it stays a
# regression test in every plain `go test` run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZTIME="${FUZZTIME:-20s}"
targets=(FuzzSessionCookie FuzzCallbackState FuzzLocalTarget FuzzInsideExternal FuzzParseUsers FuzzLogoutToken FuzzAssertionPayload)
for t in "${targets[@]}"; do
	echo "fuzz: $t for $FUZZTIME"
	go test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" ./caddymodule
done
