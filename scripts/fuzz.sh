#!/usr/bin/env bash
# Runs each fuzz target of caddymodule for a bounded time (FUZZTIME, default
# 20s). A crash fails the script; go test writes the input to
# caddymodule/testdata/fuzz/<target>/ — commit it with the fix, so it stays a
# regression test in every plain `go test` run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

FUZZTIME="${FUZZTIME:-20s}"
# Every Fuzz function of the package, so a new target cannot be forgotten.
mapfile -t targets < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' caddymodule/*_test.go)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no Fuzz targets found in caddymodule" >&2
	exit 1
fi
for t in "${targets[@]}"; do
	echo "fuzz: $t for $FUZZTIME"
	go test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" ./caddymodule
done
